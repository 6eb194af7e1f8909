import heapq
import os

from st2common.runners.base_action import Action


class LargestFilesAction(Action):
    def run(self, path, count=None):
        if not os.path.isdir(path):
            return (False, {"path": path, "error": "no such folder"})

        count = count or self.config.get("largest_files_count", 10)
        device = os.stat(path).st_dev
        sizes = []
        for folder, subfolders, files in os.walk(path, onerror=lambda error: None):
            # Stay on the filesystem that is full.
            subfolders[:] = [d for d in subfolders if _device(os.path.join(folder, d)) == device]
            for name in files:
                full = os.path.join(folder, name)
                try:
                    sizes.append((os.lstat(full).st_size, full))
                except OSError:
                    continue

        largest = heapq.nlargest(count, sizes)
        for size, name in largest:
            print("%12d  %s" % (size, name))

        # Kept in the datastore, local to this action's pack and class, for the next run to compare.
        key = "largest." + (path.strip("/").replace("/", ".") or "root")
        previous = self.action_service.get_value(key)
        self.action_service.set_value(key, str(largest[0][0] if largest else 0))
        self.logger.info("%d files under %s", len(sizes), path)
        return {"path": path, "files": [{"path": name, "bytes": size} for size, name in largest],
                "previous_largest_bytes": int(previous) if previous else None}


def _device(path):
    try:
        return os.lstat(path).st_dev
    except OSError:
        return None
