"""Panoptic controls for the nerfstudio viewer (``ns-viewer`` / ``ns-train --vis viewer``).

The model owns one :class:`PanopticViewerGUI` (an ``nn.Module`` without parameters, so nerfstudio's viewer finds its
``ViewerElement`` attributes when it walks the model). It adds, under "Custom Elements":

* a class legend (colour swatch, name, thing/stuff),
* a class filter (other classes are greyed out in ``semantics_colormap``, ``instance_colormap`` and ``panoptic``),
* the opacity of the class colours in the ``panoptic`` overlay,
* "Select instance": the next click in the 3D view renders the clicked ray and selects that 3D instance (shows its
  class, id and share of the pixels of the last rendered view; its outline is drawn in the instance and panoptic
  maps),
* "Hide selected" (drawn see-through in the colour maps only), "Delete selected" (removes it from the scene: a live
  :class:`~plift_ns.editing.field.Delete` edit of the field) and "Restore all".

The post-processing runs on whole images in ``get_outputs_for_camera_ray_bundle`` through :meth:`apply`; it leaves
every colour map a float (H, W, 3) image in [0, 1] (the viewer crashes on int or 2-channel outputs). In the viewer's
render thread only, the C-channel ``semantics`` and K-channel ``instance`` outputs are shown as probability-weighted
colours: the viewer would map them with PCA, which raises on uniform images (a view of empty space) and stops the
viewer's render thread. Everywhere else (ns-render, plift-eval, training) they stay the raw rendered distributions.
"""

from __future__ import annotations

import base64
import contextlib
import io
import threading
import weakref
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Set, Tuple

import numpy as np
import torch
from jaxtyping import Float
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.viewer.viewer_elements import (
    ViewerButton,
    ViewerClick,
    ViewerControl,
    ViewerDropdown,
    ViewerElement,
    ViewerSlider,
)
from torch import Tensor, nn

from plift_ns.colors import id_colors

if TYPE_CHECKING:
    from plift_ns.data.classes import ClassSet

ALL_CLASSES = "all classes"
SELECT_COLOR = (1.0, 0.85, 0.1)


class ViewerMarkdown(ViewerElement[str]):
    """A read-only markdown block in the viewer's control panel (nerfstudio has no markdown element)."""

    def __init__(self, name: str, content: str, visible: bool = True) -> None:
        super().__init__(name, visible=visible)
        self._content = content

    def _create_gui_handle(self, viser_server: Any) -> None:
        self.gui_handle = viser_server.gui.add_markdown(self._content, visible=self.visible)  # type: ignore[assignment]

    def install(self, viser_server: Any) -> None:
        self._create_gui_handle(viser_server)

    @property
    def content(self) -> str:
        return self._content

    @content.setter
    def content(self, value: str) -> None:
        self._content = value
        if self.gui_handle is not None:
            self.gui_handle.content = value  # type: ignore[union-attr]


def _swatch_data_url(color: Tuple[int, int, int], size: int = 12) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), tuple(int(c) for c in color)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def legend_markdown(class_set: "ClassSet") -> str:
    """The class legend as a markdown table: swatch, id, name, thing/stuff."""
    rows = ["| | id | class | |", "|---|---|---|---|"]
    for k, (name, isthing, color) in enumerate(zip(class_set.names, class_set.isthing, class_set.colors)):
        rows.append(f"| ![{name}]({_swatch_data_url(color)}) | {k} | {name} | {'thing' if isthing else 'stuff'} |")
    return "\n".join(rows)


_VIEWER_FRAME = threading.local()


@contextlib.contextmanager
def as_viewer_frame() -> Iterator[None]:
    """Render in this thread as nerfstudio's viewer render thread does (benchmarks and tests of viewer frames)."""
    _VIEWER_FRAME.active = True
    try:
        yield
    finally:
        _VIEWER_FRAME.active = False


def in_viewer_render_thread() -> bool:
    """True inside nerfstudio's viewer render thread (a RenderStateMachine), i.e. for images shown in the viewer, and
    inside :func:`as_viewer_frame`."""
    from nerfstudio.viewer.render_state_machine import RenderStateMachine

    return getattr(_VIEWER_FRAME, "active", False) or isinstance(threading.current_thread(), RenderStateMachine)


def _outline(mask: Tensor) -> Tensor:
    """Pixels of ``mask`` (H, W) that touch a pixel outside it."""
    edge = torch.zeros_like(mask)
    edge[:-1] |= mask[:-1] != mask[1:]
    edge[1:] |= mask[1:] != mask[:-1]
    edge[:, :-1] |= mask[:, :-1] != mask[:, 1:]
    edge[:, 1:] |= mask[:, 1:] != mask[:, :-1]
    return edge & mask


class PanopticViewerGUI(nn.Module):
    """Viewer elements and state of the panoptic controls; see the module docstring. Holds no parameters."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self._model_ref = weakref.ref(model)  # not a submodule: no cycle in the module tree or the viewer's walk
        class_set: ClassSet = model.class_set  # type: ignore[assignment]
        self._names: List[str] = list(class_set.names)
        self.selected: Optional[Tuple[int, int]] = None
        self.hidden: Set[Tuple[int, int]] = set()
        self.deleted: List[Tuple[int, int]] = []
        self.last_labels: Optional[Tuple[Tensor, Tensor]] = None
        self.viewer_control = ViewerControl()
        # Elements are installed in alphabetical order of their attribute names (nerfstudio walks dir(model)).
        self.gui_1_legend = ViewerMarkdown("Classes", legend_markdown(class_set))
        self.gui_2_class_filter = ViewerDropdown(
            "Class filter", ALL_CLASSES, [ALL_CLASSES] + self._names, hint="Grey out every other class"
        )
        self.gui_3_opacity = ViewerSlider(
            "Overlay opacity", 0.5, 0.0, 1.0, 0.05, hint="Class colour opacity in the 'panoptic' output"
        )
        self.gui_4_select = ViewerButton("Select instance (then click the view)", cb_hook=self._arm_click)
        self.gui_5_selection = ViewerMarkdown("Selection", "_No instance selected._")
        self.gui_6_hide = ViewerButton("Hide selected", cb_hook=lambda _: self.hide_selected())
        self.gui_7_delete = ViewerButton("Delete selected", cb_hook=lambda _: self.delete_selected())
        self.gui_8_restore = ViewerButton("Restore all", cb_hook=lambda _: self.restore_all())

    # ------------------------------------------------------------------ helpers
    def _model(self) -> Any:
        model = self._model_ref()
        if model is None:
            raise RuntimeError("the model of this viewer GUI is gone")
        return model

    def _viewer(self) -> Any:
        return getattr(self.viewer_control, "viewer", None)

    def _lock(self) -> Any:
        viewer = self._viewer()
        lock = getattr(viewer, "train_lock", None) if viewer is not None else None
        return lock if lock is not None else contextlib.nullcontext()

    def _rerender(self) -> None:
        viewer = self._viewer()
        if viewer is not None:
            viewer._trigger_rerender()

    def describe(self, label: Optional[Tuple[int, int]]) -> str:
        """Markdown for the selection panel: class, id and share of the last rendered view."""
        if label is None:
            return "_No instance selected._"
        c, i = label
        share = self.pixel_share(label)
        kind = f"instance **{i}**" if i > 0 else "stuff (no instance id)"
        flags = [s for s, on in (("hidden", label in self.hidden), ("deleted", label in self.deleted)) if on]
        extra = f" — {', '.join(flags)}" if flags else ""
        return f"**{self._names[c]}** (class {c}), {kind}: {share:.1%} of the view{extra}"

    def _update_selection_text(self) -> None:
        self.gui_5_selection.content = self.describe(self.selected)

    def pixel_share(self, label: Tuple[int, int]) -> float:
        """Fraction of the pixels of the last rendered view with this (class, instance id)."""
        if self.last_labels is None:
            return 0.0
        sem, inst = self.last_labels
        return float(self._mask(sem, inst, label).float().mean()) if sem.numel() else 0.0

    @staticmethod
    def _mask(sem: Tensor, inst: Tensor, label: Tuple[int, int]) -> Tensor:
        c, i = label
        return (sem == c) if i == 0 else (sem == c) & (inst == i)

    # ------------------------------------------------------------------ picking
    def _arm_click(self, _: Any = None) -> None:
        """Register a one-shot click callback on the 3D view."""
        if self._viewer() is None:
            return
        self.gui_5_selection.content = "_Click an object in the view…_"
        self.viewer_control.register_pointer_cb("click", self._on_click)

    def _on_click(self, click: ViewerClick) -> None:
        with contextlib.suppress(Exception):
            self.viewer_control.unregister_pointer_cb()
        self.select_ray(click.origin, click.direction)

    @torch.no_grad()
    def pick(self, origin: Tuple[float, float, float], direction: Tuple[float, float, float]) -> Optional[Tuple[int, int]]:
        """(class, instance id) of the surface hit by one ray (normalised scene coordinates), None if it hits
        nothing (accumulation < 0.5)."""
        model = self._model()
        device = model.device
        o = torch.tensor(origin, dtype=torch.float32, device=device)[None]
        d = torch.tensor(direction, dtype=torch.float32, device=device)[None]
        d = d / d.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        bundle = RayBundle(
            origins=o,
            directions=d,
            pixel_area=torch.ones((1, 1), device=device),
            camera_indices=torch.zeros((1, 1), dtype=torch.long, device=device),
            metadata={},
        )
        with self._lock():
            was_training = model.training
            model.eval()
            try:
                out = model(bundle)
            finally:
                model.train(was_training)
        if float(out["accumulation"][0, 0]) < 0.5:
            return None
        sem, inst = model.panoptic_labels(out["semantics"], out["instance"])
        return int(sem[0]), int(inst[0])

    def select_ray(self, origin: Tuple[float, float, float], direction: Tuple[float, float, float]) -> None:
        """Select the 3D instance under a clicked ray and show it."""
        self.selected = self.pick(origin, direction)
        self._update_selection_text()
        self._rerender()

    # ------------------------------------------------------------------ actions
    def hide_selected(self) -> None:
        if self.selected is not None:
            self.hidden.add(self.selected)
            self._update_selection_text()

    def delete_selected(self) -> None:
        """Delete the selected instance from the scene (a live Delete edit of the field)."""
        if self.selected is None or self.selected in self.deleted:
            return
        from plift_ns.editing.field import Delete, apply_edits

        self.deleted.append(self.selected)
        self.gui_5_selection.content = self.describe(self.selected) + " — deleting…"
        # (nerfstudio already runs element callbacks under the viewer's train lock: taking it again would deadlock)
        edited = apply_edits(self._model(), [Delete(c, i) for c, i in self.deleted])
        edited.region(*self.selected)  # find its extent now (a grid pass), not in the middle of a render
        self._update_selection_text()

    def restore_all(self) -> None:
        """Undo hiding, deleting, selection and the class filter."""
        from plift_ns.editing.field import remove_edits

        remove_edits(self._model())  # under the viewer's train lock (nerfstudio wraps element callbacks in it)
        self.deleted.clear()
        self.hidden.clear()
        self.selected = None
        self.gui_2_class_filter.value = ALL_CLASSES
        self._update_selection_text()

    # ------------------------------------------------------------------ image post-processing
    @property
    def is_default(self) -> bool:
        return (
            self.gui_2_class_filter.value == ALL_CLASSES
            and not self.hidden
            and self.selected is None
            and abs(float(self.gui_3_opacity.value) - 0.5) < 1e-6
        )

    @staticmethod
    def _soft_maps(model: Any, outputs: Dict[str, Tensor]) -> None:
        """For the viewer only: the C-channel ``semantics`` and K-channel ``instance`` become probability-weighted
        colours (3 channels). The viewer would show them through a PCA colour map, which raises on uniform images
        (e.g. a view of empty space) and stops the viewer's render thread."""
        cfg = model.config
        sem = outputs["semantics"] if cfg.bounded_semantics else torch.softmax(outputs["semantics"], dim=-1)
        ins = outputs["instance"] if cfg.bounded_instances else torch.softmax(outputs["instance"], dim=-1)
        class_colors = model.class_colors[: sem.shape[-1]].to(sem)
        id_palette = torch.from_numpy(id_colors(np.arange(1, ins.shape[-1] + 1))).to(ins)
        outputs["semantics"] = (sem @ class_colors).clamp(0, 1)
        outputs["instance"] = (ins @ id_palette).clamp(0, 1)

    @torch.no_grad()
    def apply(self, outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Remember the label map of the rendered image and apply filter / hiding / selection / opacity to the colour
        maps (a no-op for ns-render, plift-eval and the defaults)."""
        needed = ("rgb", "semantics", "instance", "semantics_colormap", "instance_colormap")
        if any(k not in outputs for k in needed) or outputs["rgb"].dim() != 3:
            return outputs
        model = self._model()
        sem, inst = model.panoptic_labels(outputs["semantics"], outputs["instance"])
        self.last_labels = (sem.cpu(), inst.cpu())
        if in_viewer_render_thread():
            self._soft_maps(model, outputs)
        if self.is_default:
            return outputs

        rgb = outputs["rgb"][..., :3].clamp(0, 1)
        grey = 0.25 + 0.5 * rgb.mean(dim=-1, keepdim=True).expand_as(rgb)
        see_through = torch.zeros_like(sem, dtype=torch.bool)
        for label in self.hidden:
            see_through |= self._mask(sem, inst, label)
        greyed = torch.zeros_like(see_through)
        filt = self.gui_2_class_filter.value
        if filt != ALL_CLASSES and filt in self._names:
            greyed = sem != self._names.index(filt)
        sem_rgb, inst_rgb = outputs["semantics_colormap"], outputs["instance_colormap"]
        for name, image in (("semantics_colormap", sem_rgb), ("instance_colormap", inst_rgb)):
            image = torch.where(see_through[..., None], rgb, image)
            outputs[name] = torch.where(greyed[..., None], grey, image)
        base = torch.where(greyed[..., None], grey, rgb)
        overlay_sem = torch.where((see_through | greyed)[..., None], base, sem_rgb)
        panoptic = panoptic_overlay(base, overlay_sem, inst_rgb, opacity=float(self.gui_3_opacity.value))
        if self.selected is not None:
            edge = _outline(self._mask(sem, inst, self.selected))
            color = torch.tensor(SELECT_COLOR, dtype=rgb.dtype, device=rgb.device)
            panoptic = torch.where(edge[..., None], color, panoptic)
            outputs["instance_colormap"] = torch.where(edge[..., None], color, outputs["instance_colormap"])
        outputs["panoptic"] = panoptic.clamp(0, 1)
        return outputs


def label_counts(sem: Tensor, inst: Tensor) -> Dict[Tuple[int, int], int]:
    """Pixel count per (class, instance id) of a label map."""
    pairs, counts = torch.unique(torch.stack([sem.reshape(-1), inst.reshape(-1)], dim=1), dim=0, return_counts=True)
    return {(int(p[0]), int(p[1])): int(n) for p, n in zip(pairs, counts)}


__all__ = ["PanopticViewerGUI", "ViewerMarkdown", "label_counts", "legend_markdown"]


def panoptic_overlay(
    rgb: Float[Tensor, "H W 3"], semantic_colors: Float[Tensor, "H W 3"], instance_colors: Float[Tensor, "H W 3"],
    opacity: float = 0.5,
) -> Float[Tensor, "H W 3"]:
    """RGB blended with the class colours, with segment boundaries (class or instance changes) drawn white."""
    blended = (1 - opacity) * rgb + opacity * semantic_colors
    key = semantic_colors + 2.0 * instance_colors
    edge = torch.zeros(rgb.shape[:2], dtype=torch.bool, device=rgb.device)
    edge[:-1] |= (key[1:] != key[:-1]).any(dim=-1)
    edge[:, :-1] |= (key[:, 1:] != key[:, :-1]).any(dim=-1)
    return torch.where(edge[..., None], torch.ones_like(blended), blended).clamp(0, 1)
