"""Procedural scenes for toy_nuswide: one visible motif per NUS-WIDE TC-10 label.

Per-item parameters (positions, sizes, colours) are sampled vectorised over a batch with
numpy; the pixels are drawn by the small numba rasteriser in ``toy_raster`` (bounding-box
loops, no (B, S, S) temporaries for small shapes). Positions, scales and colours are
jittered, the background carries random colours (a third of them sky-like) and clutter,
so no label can be read off one fixed pixel, while each motif's shape and texture stay
learnable (see tests/test_data_toy.py).
"""

from __future__ import annotations

import numpy as np

from egath_lite.data import toy_raster as R
from egath_lite.data.reference import NUS_TC10_LABELS

SKY_KINDS = ("none", "day", "overcast", "dusk")  # attrs["sky_kind"] indexes this
ANIMAL_KINDS = ("dog", "cat", "horse", "cow", "bird")  # attrs["animal_kind"] indexes this (-1: none)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB: h, s, v (m,) in [0, 1] -> (m, 3) float64."""
    i = np.floor(h * 6.0).astype(np.int64) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=1)


def _pick(rng: np.random.Generator, palette: np.ndarray, m: int, jitter: float) -> np.ndarray:
    """m colours (m, 3) drawn from palette rows, each channel jittered by +-jitter."""
    rows = palette[rng.integers(0, len(palette), m)]
    return np.clip(rows + rng.uniform(-jitter, jitter, (m, 3)), 0.0, 1.0)


def _smooth_step(d: np.ndarray, width: float) -> np.ndarray:
    """Soft edge as float32: 1 where d < -width/2, 0 where d > width/2, linear in between."""
    return np.clip(0.5 - d / width, 0.0, 1.0).astype(np.float32)


class SceneRenderer:
    """Renders batches of S x S RGB scenes (S >= 16, default 64) from NUS-WIDE TC-10 label rows."""

    def __init__(self, image_size: int = 64):
        if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 16:
            raise ValueError(f"image_size must be an int >= 16 (got {image_size!r}); 64 is the default")
        self.size = int(image_size)
        coords = (np.arange(self.size, dtype=np.float32) + 0.5) / self.size
        self.u = coords[None, None, :]  # x, (1, 1, S)
        self.v = coords[None, :, None]  # y (downwards), (1, S, 1)
        self.soft = 1.5 / self.size  # edge width: ~1.5 px of anti-aliasing at any resolution
        self.col = {name: i for i, name in enumerate(NUS_TC10_LABELS)}
        R.warm_up()

    # ------------------------------------------------------------------ public
    def render(self, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """labels (B, 10) 0/1 -> images uint8 (B, S, S, 3) and attrs {"sky_kind", "animal_kind"} int8 (B,)."""
        labels = np.asarray(labels)
        if labels.ndim != 2 or labels.shape[1] != len(NUS_TC10_LABELS):
            raise ValueError(f"labels must be (B, {len(NUS_TC10_LABELS)}) in NUS_TC10_LABELS order, got {labels.shape}")
        n = labels.shape[0]
        canvas = np.empty((n, self.size, self.size, 3), dtype=np.float32)
        attrs = {"sky_kind": np.zeros(n, np.int8), "animal_kind": np.full(n, -1, np.int8)}
        everyone = np.arange(n, dtype=np.int64)
        self._background(canvas, rng)
        self._clutter(canvas, everyone, rng, count=3, max_size=0.22)
        has = {name: np.flatnonzero(labels[:, i]).astype(np.int64) for name, i in self.col.items()}
        horizon = rng.uniform(0.25, 0.6, n)  # sky/ground boundary, shared by sky and clouds
        ground = rng.uniform(0.72, 0.97, n)  # where figures and buildings stand
        # Painter's order: far to near.
        self._sky(canvas, has["sky"], horizon, attrs, rng)
        self._clouds(canvas, has["clouds"], np.where(labels[:, self.col["sky"]] > 0, horizon, 0.5), rng)
        self._water(canvas, has["water"], rng)
        self._lake(canvas, has["lake"], rng)
        self._grass(canvas, has["grass"], rng)
        self._buildings(canvas, has["buildings"], ground, rng)
        self._windows(canvas, has["window"], labels[:, self.col["buildings"]] > 0, rng)
        self._plants(canvas, has["plants"], rng)
        self._animals(canvas, has["animal"], ground, attrs, rng)
        self._people(canvas, has["person"], ground, rng)
        self._clutter(canvas, everyone[rng.random(n) < 0.4], rng, count=1, max_size=0.12)  # occluders
        return self._finish(canvas, rng), attrs

    # ------------------------------------------------------------ primitives
    def _box(self, canvas, idx, x0, x1, y0, y1, color, opacity=1.0) -> None:
        """Soft rectangles for items idx; every argument is (m,) (color (m, 3)) or a scalar."""
        m = len(idx)
        R.fill_boxes(
            canvas,
            idx,
            _f64(x0, m),
            _f64(x1, m),
            _f64(y0, m),
            _f64(y1, m),
            _f64(color, m, 3),
            _f64(opacity, m),
            self.soft,
        )

    def _ellipse(self, canvas, idx, cx, cy, rx, ry, color, theta=0.0, opacity=1.0) -> None:
        """Soft (rotated) ellipses for items idx; arguments (m,) or scalars, color (m, 3)."""
        m = len(idx)
        R.fill_ellipses(
            canvas,
            idx,
            _f64(cx, m),
            _f64(cy, m),
            _f64(rx, m),
            _f64(ry, m),
            _f64(theta, m),
            _f64(color, m, 3),
            _f64(opacity, m),
            self.soft,
        )

    def _p(self, x) -> np.ndarray:
        """(m,) per-item parameter -> (m, 1, 1) float32 for pixel-wise numpy expressions."""
        return np.asarray(x, dtype=np.float32)[:, None, None]

    # ------------------------------------------------------------ background
    def _background(self, canvas: np.ndarray, rng: np.random.Generator) -> None:
        """Random colours in a vertical gradient plus a faint plane wave; most look like a sky above water or grass.

        The look-alikes are what keeps single pixels uninformative: 75% of backgrounds carry a
        sky's own colours and gradient on top (in the sky motif's day/overcast/dusk proportions)
        and 60% water or grass colours at the bottom. The motifs differ from them by shape and
        texture only: the sky's sharp tilted horizon, water's stripes, grass's blades.
        """
        n = canvas.shape[0]
        top = _hsv_to_rgb(rng.random(n), rng.uniform(0.05, 0.55, n), rng.uniform(0.25, 0.9, n))
        mid = top.copy()
        bottom = _hsv_to_rgb(rng.random(n), rng.uniform(0.05, 0.55, n), rng.uniform(0.2, 0.8, n))
        kind = rng.choice(4, n, p=[0.25, 0.45, 0.15, 0.15])  # random / day sky / overcast / dusk, as _sky's mix
        for k, (tp, lw) in {
            1: (_SKY_DAY_TOP, _SKY_DAY_LOW),
            2: (_SKY_GREY_TOP, _SKY_GREY_LOW),
            3: (_SKY_DUSK_TOP, _SKY_DUSK_LOW),
        }.items():
            sel = kind == k
            top[sel], mid[sel] = _pick(rng, tp, int(sel.sum()), 0.08), _pick(rng, lw, int(sel.sum()), 0.08)
        low_kind = rng.choice(3, n, p=[0.4, 0.35, 0.25])  # random / water-like / grass-like
        for k, palette in {1: _WATER, 2: _GRASS}.items():
            sel = low_kind == k
            bottom[sel] = _pick(rng, palette, int(sel.sum()), 0.1)
        split = np.where(kind > 0, rng.uniform(0.25, 0.6, n), rng.uniform(0.1, 0.7, n))  # sky-like: like a horizon
        angle, freq = rng.uniform(0, 2 * np.pi, n), rng.uniform(1.0, 4.0, n)
        R.fill_background(
            canvas,
            top,
            mid,
            bottom,
            split,
            freq * np.cos(angle),
            freq * np.sin(angle),
            rng.uniform(0, 2 * np.pi, n),
            np.full(n, 0.05),
        )

    def _clutter(self, canvas, idx, rng, count: int, max_size: float) -> None:
        """`count` random boxes or ellipses of random colour per item (distractors / occluders)."""
        m = len(idx)
        for _ in range(count):
            cx, cy = rng.random(m), rng.random(m)
            rx, ry = rng.uniform(0.03, max_size, m), rng.uniform(0.03, max_size, m)
            color = _hsv_to_rgb(rng.random(m), rng.uniform(0.0, 0.7, m), rng.uniform(0.1, 0.95, m))
            opacity = rng.uniform(0.5, 1.0, m)
            is_box = rng.random(m) < 0.5
            self._box(canvas, idx, cx - rx, cx + rx, cy - ry, cy + ry, color, opacity * is_box)
            self._ellipse(canvas, idx, cx, cy, rx, ry, color, opacity=opacity * ~is_box)

    # ------------------------------------------------------------------ motifs
    def _sky(self, canvas, idx, horizon, attrs, rng) -> None:
        """sky: a vertical gradient band from the top down to a tilted horizon (day / overcast / dusk)."""
        m = len(idx)
        if m == 0:
            return
        kind = rng.choice(3, m, p=[0.6, 0.2, 0.2]) + 1
        attrs["sky_kind"][idx] = kind
        top, low = np.empty((m, 3)), np.empty((m, 3))
        for k, (tp, lw) in {
            1: (_SKY_DAY_TOP, _SKY_DAY_LOW),
            2: (_SKY_GREY_TOP, _SKY_GREY_LOW),
            3: (_SKY_DUSK_TOP, _SKY_DUSK_LOW),
        }.items():
            sel = kind == k
            top[sel], low[sel] = _pick(rng, tp, int(sel.sum()), 0.08), _pick(rng, lw, int(sel.sum()), 0.08)
        R.fill_sky(canvas, idx, _f64(horizon[idx], m), rng.uniform(-0.15, 0.15, m), top, low, self.soft)

    def _clouds(self, canvas, idx, upper, rng) -> None:
        """clouds: 1-3 puffy blobs (three overlapping ellipses each) in the upper part, white to grey."""
        m = len(idx)
        if m == 0:
            return
        color = _pick(rng, _CLOUD, m, 0.06)
        n_blobs = rng.integers(1, 4, m)
        top = upper[idx] * 0.85
        for b in range(4):
            cx, cy = rng.uniform(0.05, 0.95, m), rng.uniform(0.08, 1.0, m) * top
            r = rng.uniform(0.05, 0.1, m)
            shade = np.clip(color * rng.uniform(0.9, 1.05, (m, 1)), 0, 1)
            for dx, dy, k in ((-1.0, 0.2, 0.8), (1.0, 0.2, 0.8), (0.0, -0.25, 1.0)):  # two side lobes, a taller middle
                self._ellipse(
                    canvas,
                    idx,
                    cx + dx * r,
                    cy + dy * r,
                    r * 1.1 * k,
                    r * 0.75 * k,
                    shade,
                    opacity=0.92 * (n_blobs > b),
                )

    def _water(self, canvas, idx, rng) -> None:
        """water: a bottom band with horizontal wavy stripes and bright ripple crests."""
        m = len(idx)
        if m == 0:
            return
        base = _pick(rng, _WATER, m, 0.08)
        R.fill_water(
            canvas,
            idx,
            rng.uniform(0.5, 0.8, m),
            base,
            np.clip(base + 0.35, 0, 1),
            rng.uniform(10, 20, m),
            rng.uniform(2, 5, m),
            rng.uniform(0, 2 * np.pi, m),
            self.soft,
        )

    def _lake(self, canvas, idx, rng) -> None:
        """lake: a flat ellipse inside a shore rim, with one light reflection streak."""
        m = len(idx)
        if m == 0:
            return
        cx, cy = rng.uniform(0.3, 0.7, m), rng.uniform(0.6, 0.85, m)
        rx, ry = rng.uniform(0.22, 0.42, m), rng.uniform(0.07, 0.14, m)
        self._ellipse(canvas, idx, cx, cy, rx + 0.04, ry + 0.03, _pick(rng, _SHORE, m, 0.06))
        water = _pick(rng, _LAKE, m, 0.06)
        self._ellipse(canvas, idx, cx, cy, rx, ry, water)
        self._ellipse(
            canvas, idx, cx, cy - ry * 0.3, rx * 0.6, ry * 0.12 + 0.01, np.clip(water + 0.4, 0, 1), opacity=0.7
        )

    def _grass(self, canvas, idx, rng) -> None:
        """grass: a bottom band (full or partial width) whose top edge is a row of pointed blades."""
        m = len(idx)
        if m == 0:
            return
        p = self._p
        top, height = p(rng.uniform(0.6, 0.85, m)), p(rng.uniform(0.05, 0.12, m))
        saw = np.abs(((self.u * p(rng.uniform(14, 26, m)) + p(rng.random(m))) % 1.0) - 0.5) * 2  # 0 at blade tips
        width = rng.uniform(0.45, 1.0, m)
        left = rng.random(m) < 0.5
        x0, x1 = p(np.where(left, 0.0, 1.0 - width)), p(np.where(left, width, 1.0))
        span = _smooth_step(np.maximum(x0 - self.u, self.u - x1), self.soft)
        alpha = _smooth_step(top + height * saw - self.v, 2 * self.soft) * span  # (m, S, S)
        green = _pick(rng, _GRASS, m, 0.06).astype(np.float32)
        shade = np.broadcast_to((0.75 + 0.25 * saw)[..., None], alpha.shape + (1,))  # darker blade centres
        R.paint_field(canvas, idx, np.ascontiguousarray(alpha), np.ascontiguousarray(green[:, None, None, :] * shade))

    def _buildings(self, canvas, idx, ground, rng) -> None:
        """buildings: 1-4 blocks on a common base line, each with a darker roof edge."""
        m = len(idx)
        if m == 0:
            return
        base = np.minimum(ground[idx], 0.9)
        count = rng.integers(1, 5, m)
        x = rng.uniform(-0.05, 0.4, m)
        for b in range(4):
            on = (count > b).astype(np.float64)
            w, top = rng.uniform(0.14, 0.32, m), rng.uniform(0.12, 0.55, m)
            color = _pick(rng, _BUILDING, m, 0.07)
            self._box(canvas, idx, x, x + w, top, base, color, on)
            self._box(canvas, idx, x, x + w, top, top + 0.03, color * 0.6, on)
            x = x + w + rng.uniform(-0.06, 0.1, m)

    def _windows(self, canvas, idx, has_buildings, rng) -> None:
        """window: a lit grid of 2-5 x 2-5 panes in a frame, on a wall or a building."""
        m = len(idx)
        if m == 0:
            return
        w, h = rng.uniform(0.22, 0.5, m), rng.uniform(0.2, 0.45, m)
        x0, y0 = rng.uniform(0.02, 0.98 - w), rng.uniform(0.1, 0.85 - h)
        wall = ~has_buildings[idx] & (rng.random(m) < 0.5)
        self._box(canvas, idx, x0 - 0.06, x0 + w + 0.06, y0 - 0.06, y0 + h + 0.06, _pick(rng, _BUILDING, m, 0.08), wall)
        self._box(canvas, idx, x0, x0 + w, y0, y0 + h, _pick(rng, _FRAME, m, 0.05))
        cols, rows = rng.integers(2, 6, m), rng.integers(2, 6, m)
        lit = _pick(rng, _LIT, m, 0.08)
        pane_w, pane_h = w / cols, h / rows
        for c in range(5):
            for r in range(5):
                on = (c < cols) & (r < rows)
                px, py = x0 + c * pane_w, y0 + r * pane_h
                self._box(
                    canvas, idx, px + 0.18 * pane_w, px + 0.82 * pane_w, py + 0.18 * pane_h, py + 0.82 * pane_h, lit, on
                )

    def _plants(self, canvas, idx, rng) -> None:
        """plants: a stem with 5-8 rotated leaves around it, a third with small flowers."""
        m = len(idx)
        if m == 0:
            return
        cx, cy = rng.uniform(0.15, 0.85, m), rng.uniform(0.35, 0.75, m)
        size = rng.uniform(0.7, 1.3, m)
        green = _pick(rng, _LEAF, m, 0.07)
        self._box(canvas, idx, cx - 0.012 * size, cx + 0.012 * size, cy, cy + 0.3 * size, green * 0.6)
        n_leaves = rng.integers(5, 9, m)
        for k in range(8):
            theta, dist = rng.uniform(0, np.pi, m), rng.uniform(0.0, 0.12, m) * size
            self._ellipse(
                canvas,
                idx,
                cx + dist * np.cos(2 * theta),
                cy + dist * np.sin(2 * theta) * 0.7 + 0.05 * size,
                rng.uniform(0.05, 0.09, m) * size,
                rng.uniform(0.018, 0.032, m) * size,
                np.clip(green * rng.uniform(0.8, 1.2, (m, 1)), 0, 1),
                theta=theta,
                opacity=n_leaves > k,
            )
        flowers = rng.random(m) < 0.35
        for _ in range(3):
            r = rng.uniform(0.015, 0.03, m) * size
            self._ellipse(
                canvas,
                idx,
                cx + rng.uniform(-0.1, 0.1, m) * size,
                cy + rng.uniform(-0.05, 0.12, m) * size,
                r,
                r,
                _pick(rng, _FLOWER, m, 0.08),
                opacity=flowers,
            )

    def _animals(self, canvas, idx, ground, attrs, rng) -> None:
        """animal: a quadruped (body, head, ears, four legs, tail) or a small winged bird with a beak."""
        m = len(idx)
        if m == 0:
            return
        kind = rng.choice(len(ANIMAL_KINDS), m, p=[0.3, 0.2, 0.15, 0.15, 0.2])
        attrs["animal_kind"][idx] = kind
        bird = kind == ANIMAL_KINDS.index("bird")
        quad = ~bird
        scale = np.where(bird, rng.uniform(0.5, 0.8, m), rng.uniform(0.7, 1.3, m)) * np.where(kind == 2, 1.3, 1.0)
        fur = _pick(rng, _FUR, m, 0.06)
        cx = rng.uniform(0.2, 0.8, m)
        feet = np.where(bird, rng.uniform(0.2, 0.6, m), ground[idx])
        rx, ry = 0.13 * scale, 0.065 * scale
        cy = feet - np.where(bird, 0.0, 0.08 * scale) - ry * 0.7
        facing = np.where(rng.random(m) < 0.5, -1.0, 1.0)
        for off in (-0.7, -0.35, 0.35, 0.7):  # four legs under the body
            lx = cx + off * rx
            self._box(canvas, idx, lx - 0.012 * scale, lx + 0.012 * scale, cy, feet, fur * 0.8, quad)
        tail = cx - facing * rx * 1.1
        self._ellipse(
            canvas,
            idx,
            tail - facing * 0.03 * scale,
            cy - ry * 0.8,
            0.045 * scale,
            0.012 * scale,
            fur * 0.85,
            theta=facing * 0.5,
            opacity=quad,
        )
        self._ellipse(canvas, idx, cx, cy, rx, ry, fur)
        hx, hy = cx + facing * rx * 1.05, cy - ry * 0.9
        hr = np.where(bird, 0.45, 0.55) * ry * 1.4
        self._ellipse(canvas, idx, hx, hy, hr * 1.1, hr, fur)
        self._ellipse(canvas, idx, hx - facing * hr * 0.4, hy - hr * 0.9, hr * 0.3, hr * 0.5, fur * 0.7, opacity=quad)
        self._ellipse(canvas, idx, cx - facing * rx * 0.2, cy - ry * 0.6, rx * 0.7, ry * 0.45, fur * 0.65, opacity=bird)
        beak = hx + facing * hr * 1.4
        self._box(
            canvas,
            idx,
            beak - 0.4 * hr,
            beak + 0.4 * hr,
            hy - hr * 0.15,
            hy + hr * 0.2,
            np.tile([[0.95, 0.7, 0.1]], (m, 1)),
            bird,
        )

    def _people(self, canvas, idx, ground, rng) -> None:
        """person: 1-2 standing figures (head, arms, shirt, legs), 25-60% of the image height."""
        m = len(idx)
        if m == 0:
            return
        count = np.where(rng.random(m) < 0.3, 2, 1)
        for k in range(2):
            on = count > k
            height, cx = rng.uniform(0.25, 0.6, m), rng.uniform(0.12, 0.88, m)
            feet = np.minimum(ground[idx] + rng.uniform(-0.05, 0.05, m), 0.99)
            head_r = 0.09 * height
            head_y = feet - height + head_r
            shoulder, hip = head_y + head_r * 1.2, feet - 0.45 * height
            half_w = 0.11 * height
            skin, pants = _pick(rng, _SKIN, m, 0.05), _pick(rng, _PANTS, m, 0.06)
            shirt = _hsv_to_rgb(rng.random(m), rng.uniform(0.3, 0.9, m), rng.uniform(0.3, 0.95, m))
            for side in (-1.0, 1.0):
                lx, ax = cx + side * half_w * 0.5, cx + side * half_w * 1.25
                self._box(canvas, idx, lx - 0.25 * half_w, lx + 0.25 * half_w, hip, feet, pants, on)
                self._box(canvas, idx, ax - 0.2 * half_w, ax + 0.2 * half_w, shoulder, hip - 0.02, skin, on)
            self._box(canvas, idx, cx - half_w, cx + half_w, shoulder, hip + 0.01, shirt, on)
            self._ellipse(canvas, idx, cx, head_y, head_r, head_r * 1.15, skin, opacity=on)

    # ------------------------------------------------------------------ finish
    def _finish(self, canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Per-item exposure and colour cast, uniform sensor noise, then quantise to uint8 (B, S, S, 3)."""
        n = canvas.shape[0]
        gain = rng.uniform(0.8, 1.15, (n, 1)) * rng.uniform(0.92, 1.08, (n, 3))
        out = np.empty(canvas.shape, np.uint8)
        R.finish(canvas, gain, rng.random(canvas.shape, dtype=np.float32), 0.04, out)
        return out


def _f64(a, m: int, width: int | None = None) -> np.ndarray:
    """A scalar or array as a contiguous float64 array of shape (m,) or (m, width) for the kernels."""
    shape = (m,) if width is None else (m, width)
    if (
        isinstance(a, np.ndarray)
        and a.dtype == np.float64
        and a.shape == shape
        and a.flags.c_contiguous
        and a.flags.writeable
    ):
        return a
    out = np.empty(shape, np.float64)  # writable and contiguous: the kernels' one signature
    out[...] = a
    return out


def _rgb(*rows: tuple[float, float, float]) -> np.ndarray:
    return np.array(rows, dtype=np.float64)


_SKY_DAY_TOP = _rgb((0.20, 0.40, 0.85), (0.30, 0.50, 0.90), (0.15, 0.35, 0.75), (0.35, 0.60, 0.95))
_SKY_DAY_LOW = _rgb((0.65, 0.80, 0.95), (0.75, 0.85, 0.98), (0.55, 0.75, 0.92))
_SKY_GREY_TOP = _rgb((0.55, 0.58, 0.62), (0.45, 0.48, 0.52), (0.65, 0.67, 0.70))
_SKY_GREY_LOW = _rgb((0.78, 0.80, 0.82), (0.70, 0.72, 0.75))
_SKY_DUSK_TOP = _rgb((0.25, 0.20, 0.50), (0.35, 0.25, 0.55), (0.20, 0.25, 0.45))
_SKY_DUSK_LOW = _rgb((0.95, 0.60, 0.30), (0.98, 0.45, 0.35), (0.95, 0.75, 0.40))
_CLOUD = _rgb((0.97, 0.97, 0.97), (0.90, 0.91, 0.93), (0.80, 0.81, 0.84))
_WATER = _rgb((0.10, 0.30, 0.60), (0.05, 0.40, 0.50), (0.15, 0.25, 0.40), (0.20, 0.45, 0.55), (0.10, 0.35, 0.35))
_LAKE = _rgb((0.10, 0.25, 0.45), (0.08, 0.35, 0.40), (0.15, 0.30, 0.35))
_SHORE = _rgb((0.35, 0.28, 0.18), (0.25, 0.35, 0.15), (0.45, 0.40, 0.30))
_GRASS = _rgb((0.25, 0.60, 0.15), (0.40, 0.70, 0.20), (0.15, 0.45, 0.10), (0.55, 0.65, 0.20))
_BUILDING = _rgb((0.60, 0.60, 0.62), (0.75, 0.70, 0.60), (0.55, 0.35, 0.25), (0.40, 0.40, 0.45), (0.85, 0.82, 0.75))
_FRAME = _rgb((0.15, 0.15, 0.18), (0.30, 0.22, 0.15), (0.25, 0.25, 0.35))  # dark: lit panes must stand out
_LIT = _rgb((0.98, 0.90, 0.45), (0.95, 0.95, 0.85), (0.60, 0.80, 0.95), (0.98, 0.75, 0.35))
_LEAF = _rgb((0.20, 0.55, 0.15), (0.35, 0.65, 0.20), (0.15, 0.40, 0.20), (0.45, 0.55, 0.15))
_FLOWER = _rgb((0.90, 0.20, 0.25), (0.95, 0.85, 0.20), (0.90, 0.50, 0.80), (0.98, 0.98, 0.95))
_FUR = _rgb(
    (0.45, 0.30, 0.15),
    (0.15, 0.12, 0.10),
    (0.90, 0.88, 0.82),
    (0.55, 0.55, 0.55),
    (0.85, 0.55, 0.20),
    (0.75, 0.60, 0.35),
)
_SKIN = _rgb((0.95, 0.80, 0.65), (0.80, 0.60, 0.45), (0.55, 0.38, 0.25), (0.35, 0.22, 0.15))
_PANTS = _rgb((0.15, 0.20, 0.35), (0.10, 0.10, 0.12), (0.45, 0.40, 0.35), (0.30, 0.30, 0.32))
