"""st2common.content.utils: where a pack's files are, as pack code asks StackStorm."""

import os

__all__ = ["get_pack_base_path", "get_packs_base_paths"]


def get_packs_base_paths():
    """The packs folder this runs with (named to the host program by STORM_PACKS_ROOT)."""
    root = os.environ.get("STORM_PACKS_ROOT")
    return [root] if root else []


def get_pack_base_path(pack_name, include_trailing_slash=False, use_pack_cache=False):
    """The pack's folder: the running pack's own (its folder may differ from its name), else <packs>/<name>."""
    if not pack_name:
        return None
    roots = get_packs_base_paths()
    if not roots:
        return None
    running = os.environ.get("ST2_ACTION_PACK_NAME") or os.environ.get("ST2_SENSOR_PACK_NAME")
    folder = os.environ.get("STORM_PACK_FOLDER") if pack_name == running else None
    path = os.path.join(roots[0], folder or pack_name)
    return path + "/" if include_trailing_slash else path
