"""Parts of V-JEPA's self-supervised objective for continued pretraining: masks, the objective, collapse monitors.

Building blocks only (they import torch, transformers, `errors` and `randomness`); a recipe wires them. One optimizer
step, in outline:

    grid = TokenGrid.of(model.config, frames_per_clip)
    check_masks(mask_settings, grid)                        # once, at set-up
    message = prepare_predictor(model.vjepa2, predictor_settings, has_weights=..., seed=seed)
    objective = JepaObjective(model.vjepa2, gradient_checkpointing=...)
    optimizer = AdamW(objective.trainable_parameters(), ...)
    ...
    draws = draw_masks(mask_settings, grid, seed=seed, step=global_step, clip_ids=the_step_s_sample_ids)
    output = objective(clips, [d.rows(this_micro_batch) for d in draws])
    (output.sample_losses.sum() / clips_in_the_step).backward()
    optimizer.step(); optimizer.zero_grad()
    objective.update_target(ema_momentum(global_step, total_steps, ema.start, ema.end))
"""
