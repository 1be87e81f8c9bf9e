"""The style transplant: does the decision follow another hospital's *look*?

Global traits (a tone curve, a frame) have no region to blur, so they get a transplant, as
text does: each test film (at model input size) takes the look of a donor film, and a decision
"follows" when it moves to a class the donor's source sends. The swap arm's donor comes from a
source that (in the ties' split) never sends the decided class; the control arm's from the
film's own source (failing that, a source that sends the decided class): the same operation
with no new class information. The follow excess, its CI and levels are the text transplant's.

- `tone`: the film's intensities inside its border matched to the donor's histogram inside
  the donor's border (skimage's `match_histograms`), so it keeps its anatomy and its frame
  and takes the donor's tone curve.
- `frame`: the film's own border filled with the mean of the rest of it, then the donor's
  border (its pixels, where the border kind found it, mapped into the film's tone) pasted in:
  the donor's frame geometry, without its tone curve.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from skimage.exposure import match_histograms
from torch import nn

from medxai.metrics.shortcut import boxes_to_masks, transplant_follow
from medxai.report.record import RegionRow, StyleTransplant
from medxai.statistics.bootstrap import Clusters
from pipelines.audit.inputs import ModelInputs, TestImage
from pipelines.audit.transplant import Donors, plans, probabilities

Restyle = Callable[[str, str], torch.Tensor]  # (film, donor) -> restyled (C, S, S) pixels


CUES = {"tone": "the film's tone curve", "frame": "the film's frame geometry"}


class Looks:
    """The two restyles of the test films at model input, the border kind's masks apart: tone
    is matched inside the borders only, so a frame does not pass for a tone curve."""

    def __init__(self, inputs: ModelInputs, border: dict[str, RegionRow]) -> None:
        self.inputs, self.border = inputs, border

    def mask(self, relative: str) -> torch.Tensor:
        size = self.inputs.prep.image_size
        return boxes_to_masks([self.border[relative].model_boxes], (size, size))[0, 0]

    def tone(self, film: str, donor: str) -> torch.Tensor:
        pixels, inside = self.inputs.pixels[film], ~self.mask(film)
        theirs = self.inputs.pixels[donor][:, ~self.mask(donor)]
        matched = match_histograms(pixels[:, inside].numpy(), theirs.numpy(), channel_axis=0)
        out = pixels.clone()
        out[:, inside] = torch.from_numpy(np.clip(matched, 0, 1).astype(np.float32))
        return out

    def frame(self, film: str, donor: str) -> torch.Tensor:
        pixels, own, theirs = self.inputs.pixels[film], self.mask(film), self.mask(donor)
        mean = pixels[:, ~own].mean(1).view(-1, 1, 1) if (~own).any() else pixels.mean()
        unframed = torch.where(own, mean.expand_as(pixels), pixels)
        return torch.where(theirs, self.in_tone_of(donor, film), unframed)

    def in_tone_of(self, donor: str, film: str) -> torch.Tensor:
        """The donor in the film's tone: each value mapped from its quantile inside the
        donor's border to the same quantile inside the film's, so a frame brings its geometry
        and darkness and not the donor's tone curve (values beyond the range are clipped)."""
        q, source = np.linspace(0, 1, 257), self.inputs.pixels[donor].numpy()
        inside_theirs, inside_ours = ~self.mask(donor).numpy(), ~self.mask(film).numpy()
        if not (inside_theirs.any() and inside_ours.any()):
            return self.inputs.pixels[donor]
        theirs = np.quantile(source[:, inside_theirs], q)
        ours = np.quantile(self.inputs.pixels[film].numpy()[:, inside_ours], q)
        return torch.from_numpy(np.interp(source, theirs, ours).astype(np.float32))


def style_transplant(
    trait: str,
    restyle: Restyle,
    model: nn.Module,
    images: Sequence[TestImage],
    inputs: ModelInputs,
    decisions: dict[str, int],
    classes: Sequence[str],
    associations: dict[str, list[str]],
    settings: tuple[int, int],  # (n_bootstrap, seed)
    device: torch.device,
    batch_size: int = 32,
) -> StyleTransplant:
    """Both arms for every test film with a donor for each; the follow excess."""
    n_bootstrap, seed = settings
    known = [i for i in images if i.record.source in associations]
    donors = Donors(
        {i.relative: associations[i.record.source] for i in known},
        {i.relative: i.record.source for i in known},
    )
    planned = plans(images, donors, decisions, classes, seed)
    if not planned:
        why = "no test film had donors of a source that sends another class and of its own"
        return StyleTransplant(trait, CUES[trait], None, why)
    model = model.to(device).eval()
    batch = torch.stack([
        inputs.intensity(restyle(p.image.relative, donor))
        for p in planned
        for donor in (p.swap, p.control)
    ])  # fmt: skip
    probs = probabilities(model, batch, device, batch_size)
    swap, control = probs[0::2], probs[1::2]
    targets = [[classes.index(c) for c in p.targets] for p in planned]
    follows = np.array([int(s.argmax()) in t for s, t in zip(swap, targets, strict=True)])
    controls = np.array([int(c.argmax()) in t for c, t in zip(control, targets, strict=True)])
    shift = np.array([
        float(s[t].sum() - c[t].sum()) for s, c, t in zip(swap, control, targets, strict=True)
    ])  # fmt: skip
    patients = Clusters.of([p.image.record.patient_id for p in planned])
    follow = transplant_follow(follows, controls, shift, n_bootstrap, seed=seed, clusters=patients)
    return StyleTransplant(trait, CUES[trait], follow, "")
