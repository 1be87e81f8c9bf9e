"""Small, fast parameters for every method, shared by the saliency tests."""

# Small settings that keep every method under a few seconds on 2 CPU cores.
# Short schedules; the I-GOS family keeps its default 10-step integration grid (its gradient
# runs on every other step of it, as at the defaults).
FAST: dict[str, dict] = {
    "ig": {"steps": 16},
    "smoothgrad": {"samples": 8},
    "rise": {"masks": 400},
    "mask": {"iterations": 60, "resolution": 16},
    "igos": {"iterations": 10, "steps": 10, "resolution": 16},
    "igos++": {"iterations": 10, "steps": 10, "resolution": 16},
    "sigcam": {"iterations": 10, "steps": 10, "resolution": 16},
}


def fast_params(name: str) -> dict:
    if name.startswith("aop:"):
        if name.endswith("+mask"):
            return {"iterations": 30, "resolution": 16}
        return {"iterations": 6, "steps": 6, "resolution": 16}
    return dict(FAST.get(name, {}))


# The methods the project promises (every one has a known-answer test).
METHODS = (
    "gradcam", "gradcam++", "wgradcam", "gradient", "ig", "smoothgrad", "rise", "mask",
    "igos", "igos++", "sigcam",
)  # fmt: skip
