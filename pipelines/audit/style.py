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

The films go through in chunks (under torchrun dealt to the ranks a round at a time, as the
text transplant's are), so only a chunk's restyled films are in memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from skimage.exposure import match_histograms
from torch import nn

from medxai import distributed
from medxai.boxes import Box
from medxai.explain.base import chunks
from medxai.metrics.shortcut import boxes_to_masks, transplant_follow
from medxai.report.record import StyleTransplant
from medxai.statistics.bootstrap import Clusters
from pipelines.audit.inputs import Intensity, ModelInputs, TestImage
from pipelines.audit.transplant import Donors, Plan, plans, probabilities

CUES = {"tone": "the film's tone curve", "frame": "the film's frame geometry"}


class Looks:
    """The two restyles of films at model input (`pixels`, (C, S, S) in [0, 1]), the border
    kind's boxes (`border`, at model input) apart: tone is matched inside the borders only, so
    a frame does not pass for a tone curve."""

    def __init__(
        self, pixels: Mapping[str, torch.Tensor], size: int, border: Mapping[str, list[Box]]
    ) -> None:
        self.pixels, self.size, self.border = pixels, size, border

    def mask(self, relative: str) -> torch.Tensor:
        return boxes_to_masks([self.border[relative]], (self.size, self.size))[0, 0]

    def tone(self, film: str, donor: str) -> torch.Tensor:
        pixels, inside = self.pixels[film], ~self.mask(film)
        theirs = self.pixels[donor][:, ~self.mask(donor)]
        matched = match_histograms(pixels[:, inside].numpy(), theirs.numpy(), channel_axis=0)
        out = pixels.clone()
        out[:, inside] = torch.from_numpy(np.clip(matched, 0, 1).astype(np.float32))
        return out

    def frame(self, film: str, donor: str) -> torch.Tensor:
        pixels, own, theirs = self.pixels[film], self.mask(film), self.mask(donor)
        mean = pixels[:, ~own].mean(1).view(-1, 1, 1) if (~own).any() else pixels.mean()
        unframed = torch.where(own, mean.expand_as(pixels), pixels)
        return torch.where(theirs, self.in_tone_of(donor, film), unframed)

    def in_tone_of(self, donor: str, film: str) -> torch.Tensor:
        """The donor in the film's tone: each value mapped from its quantile inside the
        donor's border to the same quantile inside the film's, so a frame brings its geometry
        and darkness and not the donor's tone curve (values beyond the range are clipped)."""
        q, source = np.linspace(0, 1, 257), self.pixels[donor].numpy()
        inside_theirs, inside_ours = ~self.mask(donor).numpy(), ~self.mask(film).numpy()
        if not (inside_theirs.any() and inside_ours.any()):
            return self.pixels[donor]
        theirs = np.quantile(source[:, inside_theirs], q)
        ours = np.quantile(self.pixels[film].numpy()[:, inside_ours], q)
        return torch.from_numpy(np.interp(source, theirs, ours).astype(np.float32))


@dataclass(frozen=True)
class Restyling:
    """What restyling and scoring a chunk of films needs besides their pixels (sent once to
    every rank under torchrun)."""

    trait: str  # tone or frame: the Looks method that restyles
    model: nn.Module
    border: dict[str, list[Box]]  # per film, the border kind's boxes at model input
    intensity: Intensity
    size: int  # model input side
    classes: list[str]
    device: torch.device  # the one-process run's (each rank uses its own)
    batch_size: int = 32  # films a chunk (arms: ×2)


@dataclass(frozen=True)
class StyleChunk:
    """Planned films with the pixels (at model input, before the intensity steps) of them and
    their donors."""

    plans: list[Plan]
    pixels: dict[str, torch.Tensor]

    @classmethod
    def of(cls, plans: list[Plan], inputs: ModelInputs) -> StyleChunk:
        films = dict.fromkeys(r for p in plans for r in (p.image.relative, p.swap, p.control))
        return cls(plans, {r: inputs.pixels[r] for r in films})


@dataclass(frozen=True)
class Moved:
    """One film's two arms: whether each decision went to the swap donor's classes, and how
    much more probability those classes got in the swap arm than in the control arm."""

    follows: bool
    control_follows: bool
    shift: float


def style_transplant(
    shared: Restyling,
    images: Sequence[TestImage],
    inputs: ModelInputs,
    decisions: dict[str, int],
    associations: dict[str, list[str]],
    settings: tuple[int, int],  # (n_bootstrap, seed)
) -> StyleTransplant:
    """Both arms for every test film with a donor for each; the follow excess."""
    n_bootstrap, seed = settings
    known = [i for i in images if i.record.source in associations]
    donors = Donors(
        {i.relative: associations[i.record.source] for i in known},
        {i.relative: i.record.source for i in known},
    )
    planned = plans(images, donors, decisions, shared.classes, seed)
    if not planned:
        why = "no test film had donors of a source that sends another class and of its own"
        return StyleTransplant(shared.trait, CUES[shared.trait], None, why)
    parts = [planned[part] for part in chunks(len(planned), shared.batch_size)]
    done = distributed.run_everywhere(
        distributed.dealt_rounds, _restyle_chunk, shared, len(parts),
        local={"payloads": (StyleChunk.of(part, inputs) for part in parts)},
    )  # fmt: skip
    moved = [m for part in done for m in part]
    patients = Clusters.of([p.image.record.patient_id for p in planned])
    follow = transplant_follow(
        np.array([m.follows for m in moved]), np.array([m.control_follows for m in moved]),
        np.array([m.shift for m in moved]), n_bootstrap, seed=seed, clusters=patients,
    )  # fmt: skip
    return StyleTransplant(shared.trait, CUES[shared.trait], follow, "")


def _restyle_chunk(shared: Restyling, chunk: StyleChunk) -> list[Moved]:
    """Each film of the chunk in its swap donor's look and in its control donor's, scored."""
    model, device = distributed.on_rank(shared.model, shared.device)  # in eval mode
    restyle = getattr(Looks(chunk.pixels, shared.size, shared.border), shared.trait)
    batch = torch.stack([
        shared.intensity(restyle(p.image.relative, donor))
        for p in chunk.plans
        for donor in (p.swap, p.control)
    ])  # fmt: skip
    probs = probabilities(model, batch, device, shared.batch_size)
    out = []
    for plan, swap, control in zip(chunk.plans, probs[0::2], probs[1::2], strict=True):
        targets = [shared.classes.index(c) for c in plan.targets]
        out.append(Moved(
            int(swap.argmax()) in targets, int(control.argmax()) in targets,
            float(swap[targets].sum() - control[targets].sum()),
        ))  # fmt: skip
    return out
