"""NanoEvents schema of the data contract: NanoAOD plus the track extension (docs/physics.md sec. 1).

:class:`SoftTrackSchema` is coffea's ``NanoAODSchema`` with behaviours and cross-references
for the collections our generator adds: ``Track`` (a charged candidate with the pion mass;
``Track.matched_gen`` and ``Track.matched_sv`` resolve ``genPartIdx`` and ``svIdx``),
``PFCand`` (``PFCand.matched_track`` resolves ``trkIdx``), ``OtherPV`` and ``SV`` as
vertices. ``GenPart`` keeps its NanoAOD behaviour and gains the production vertex fields
vx, vy, vz. Real NanoAOD files, which lack the extension, open with it unchanged.

coffea's ``Tau`` behaviour requires ``Tau_charge``; a file without that branch (but with
``nTau``) gets it filled with 0 (:data:`FILLED_BRANCHES`), since no analysis here reads the
tau charge, and :func:`filled_branches` names the filled branches of a chunk so that the
processors say so once in their notices.
"""

from __future__ import annotations

import awkward
from coffea.nanoevents import NanoAODSchema
from coffea.nanoevents.methods import base, candidate, nanoaod, vector
from coffea.nanoevents.methods.base import dask_property
from coffea.nanoevents.schemas.nanoaod import transforms

from analysis.constants import PION_MASS

#: branches coffea's behaviours require that a file may lack: branch -> (collection, value
#: filled in). Only for quantities no analysis reads: the processors use the taus' pt, eta
#: and phi, never their charge.
FILLED_BRANCHES: dict[str, tuple[str, float]] = {"Tau_charge": ("Tau", 0.0)}
#: the ``__doc__`` parameter of a filled branch (how :func:`filled_branches` recognizes it)
FILLED_DOC = "filled by SoftTrackSchema: not in the file"

behavior: dict = dict(nanoaod.behavior)
behavior.update(awkward._util.copy_behaviors("PtEtaPhiMCandidate", "Track", behavior))
behavior.update(awkward._util.copy_behaviors("PtEtaPhiMCandidate", "PFCandidate", behavior))


@awkward.mixin_class(behavior)
class Track(candidate.PtEtaPhiMCandidate, base.NanoCollection):
    """A reconstructed track of the contract's Track collection."""

    @dask_property
    def matched_gen(self):
        """The generator particle of the truth link genPartIdx (simulation only)."""
        return self._events().GenPart._apply_global_index(self.genPartIdxG)

    @matched_gen.dask
    def matched_gen(self, dask_array):
        return dask_array._events().GenPart._apply_global_index(dask_array.genPartIdxG)

    @dask_property
    def matched_sv(self):
        """The secondary vertex of svIdx."""
        return self._events().SV._apply_global_index(self.svIdxG)

    @matched_sv.dask
    def matched_sv(self, dask_array):
        return dask_array._events().SV._apply_global_index(dask_array.svIdxG)


@awkward.mixin_class(behavior)
class PFCandidate(candidate.PtEtaPhiMCandidate, base.NanoCollection):
    """A particle-flow candidate of the contract's PFCand collection."""

    @dask_property
    def matched_track(self):
        """The track of a charged candidate (trkIdx)."""
        return self._events().Track._apply_global_index(self.trkIdxG)

    @matched_track.dask
    def matched_track(self, dask_array):
        return dask_array._events().Track._apply_global_index(dask_array.trkIdxG)


# awkward.mixin_class defines TrackArray/TrackRecord etc. in this module's namespace
TrackArray.MomentumClass = vector.LorentzVectorArray  # noqa: F821
TrackRecord.MomentumClass = vector.LorentzVectorRecord  # noqa: F821
PFCandidateArray.MomentumClass = vector.LorentzVectorArray  # noqa: F821
PFCandidateRecord.MomentumClass = vector.LorentzVectorRecord  # noqa: F821


class SoftTrackSchema(NanoAODSchema):
    """NanoAODSchema with the soft-track extension of analysis/contract.py."""

    mixins = {
        **NanoAODSchema.mixins,
        "Track": "Track",
        "PFCand": "PFCandidate",
        "OtherPV": "Vertex",
        # our SV has a position and covariance but no four-momentum: a Vertex
        "SV": "Vertex",
    }
    all_cross_references = {
        **NanoAODSchema.all_cross_references,
        "Track_genPartIdx": "GenPart",
        "Track_svIdx": "SV",
        "PFCand_trkIdx": "Track",
    }
    full_like_items = {
        **NanoAODSchema.full_like_items,
        # tracks carry the charged-pion mass so that they are Lorentz vectors
        "Track_mass": (transforms.full_like_from_offsets_form, ("oTrack", PION_MASS)),
        "PFCand_mass": (transforms.full_like_from_offsets_form, ("oPFCand", 0.0)),
    }
    #: NanoAOD cross-references whose target collection a file lacks (LowPtElectron, FatJet
    #: in our files) are dropped silently instead of one warning each.
    warn_missing_crossrefs = False

    def _build_collections(self, field_names, input_contents):
        names = set(field_names)
        fill = {branch: (_filled_form, ("o" + coll, value)) for branch, (coll, value) in FILLED_BRANCHES.items()
                if branch not in names and "n" + coll in names}
        if fill:  # this file only (an instance attribute): a branch the file has is never replaced
            self.full_like_items = {**type(self).full_like_items, **fill}
        return super()._build_collections(field_names, input_contents)

    @classmethod
    def behavior(cls):
        return behavior


def _filled_form(offsets_form, value):
    form = transforms.full_like_from_offsets_form(offsets_form, value)
    form["content"]["parameters"] = {"__doc__": FILLED_DOC}
    return form


def filled_branches(events) -> list[str]:
    """The branches of :data:`FILLED_BRANCHES` that the schema filled in for ``events``
    (the file lacks them); empty for anything that is not such NanoEvents."""
    out = []
    for branch, (coll, _) in FILLED_BRANCHES.items():
        field = branch.split("_", 1)[1]
        try:
            node = events.layout.content(coll)
            while not isinstance(node, awkward.contents.RecordArray):  # the list around the record
                node = node.content
            leaf = node.content(field)
        except (AttributeError, TypeError, ValueError, IndexError, KeyError):
            continue
        if leaf.parameter("__doc__") == FILLED_DOC:
            out.append(branch)
    return out
