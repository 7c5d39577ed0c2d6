"""Read a data set on disk into a `DatasetIndex`: which videos exist, their labels, groups, official splits.

One reader per layout (`folder`, `list_file`, `ntu`, `ucf101`, `ssv2`, `kinetics`, and `videos` without labels),
chosen from a table (`READERS`, `dispatch`); `auto` looks at the files to pick one. Readers only list files: nothing
is decoded here, so reading even a 100k-video data set is a walk of its folders. Every trap the layouts hide (CRLF
list lines, UCF-101's `HandstandPushups` folder of `v_HandStandPushups_*` files, classInd.txt's case-insensitive
order, NTU performers filmed by three cameras at once) is met in its reader.
"""

from vjepa_tune.data.sources.common import MAX_LISTED, VIDEO_EXTENSIONS
from vjepa_tune.data.sources.dispatch import READERS, detect_format, group_of, read_dataset
from vjepa_tune.data.sources.folder import read_folder
from vjepa_tune.data.sources.kinetics import KINETICS_COLUMNS, KINETICS_SPLITS, read_kinetics
from vjepa_tune.data.sources.list_file import read_list
from vjepa_tune.data.sources.ntu import (
    NTU60_LAST_SETUP,
    NTU_ACTION4,
    NTU_ACTION4_CLASSES,
    NTU_ACTION_NAMES,
    NTU_NAME,
    NTU_PROTOCOLS,
    NTU_XSUB_TRAIN_PERFORMERS,
    NTU_XVIEW_TRAIN_CAMERAS,
    ntu_action_name,
    read_ntu,
)
from vjepa_tune.data.sources.ssv2 import SSV2_ANNOTATION_DIRS, SSV2_SPLIT_FILES, SSV2_VIDEO_DIRS, read_ssv2
from vjepa_tune.data.sources.ucf101 import UCF_GROUP, UCF_LISTS, UCF_VIDEOS, read_ucf101
from vjepa_tune.data.sources.videos import UNLABELLED, read_videos

__all__ = [
    "KINETICS_COLUMNS",
    "KINETICS_SPLITS",
    "MAX_LISTED",
    "NTU60_LAST_SETUP",
    "NTU_ACTION4",
    "NTU_ACTION4_CLASSES",
    "NTU_ACTION_NAMES",
    "NTU_NAME",
    "NTU_PROTOCOLS",
    "NTU_XSUB_TRAIN_PERFORMERS",
    "NTU_XVIEW_TRAIN_CAMERAS",
    "READERS",
    "SSV2_ANNOTATION_DIRS",
    "SSV2_SPLIT_FILES",
    "SSV2_VIDEO_DIRS",
    "UCF_GROUP",
    "UCF_LISTS",
    "UCF_VIDEOS",
    "UNLABELLED",
    "VIDEO_EXTENSIONS",
    "detect_format",
    "group_of",
    "ntu_action_name",
    "read_dataset",
    "read_folder",
    "read_kinetics",
    "read_list",
    "read_ntu",
    "read_ssv2",
    "read_ucf101",
    "read_videos",
]
