"""probe_samples on small real videos: every video once per process, unreadable ones set aside in order."""

from __future__ import annotations

from vjepa_tune.data.probing import probe_samples
from vjepa_tune.data.samples import Sample


def make_samples(make_video, tmp_path, count, broken=()):
    samples = []
    for i in range(count):
        if i in broken:
            path = tmp_path / f"broken{i}.mp4"
            path.write_text("not a video")
        else:
            path = make_video(f"clip{i}", 30 + 7 * i, size=(48, 64))
        samples.append(Sample(path=path, label=i % 3, id=f"cls/{path.name}"))
    return samples


def test_probe_samples_returns_infos_and_the_unreadable_ones_in_order(make_video, tmp_path):
    samples = make_samples(make_video, tmp_path, count=5, broken=(0, 3))
    (tmp_path / "clip4.mp4").write_bytes(b"")  # emptied after it was written
    infos, unreadable = probe_samples(samples, workers=2, progress=False)
    assert set(infos) == {"cls/clip1.mp4", "cls/clip2.mp4"}
    assert infos["cls/clip2.mp4"].num_frames == 44
    assert [s.id for s, _ in unreadable] == ["cls/broken0.mp4", "cls/broken3.mp4", "cls/clip4.mp4"]
    assert "empty file" in unreadable[2][1]


def test_probe_samples_probes_an_unchanged_video_once_and_a_rewritten_one_again(make_video, tmp_path, monkeypatch):
    """`compare` probes the same videos for every strategy; a file changed in between must be probed afresh."""
    from vjepa_tune.data import probing

    samples = make_samples(make_video, tmp_path, count=2, broken=())
    probed = []
    real = probing.probe_video
    monkeypatch.setattr(probing, "probe_video", lambda path: probed.append(path) or real(path))
    first, _ = probe_samples(samples, progress=False)
    again, _ = probe_samples(samples, progress=False)
    assert again == first and len(probed) == 2

    samples[1].path.write_bytes(b"not a video")  # a new size and modification time
    infos, unreadable = probe_samples(samples, progress=False)
    assert set(infos) == {samples[0].id} and [s.id for s, _ in unreadable] == [samples[1].id]
    assert len(probed) == 3
