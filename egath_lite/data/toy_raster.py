"""A tiny anti-aliased rasteriser (numba): soft boxes, rotated ellipses and alpha layers on a batch canvas.

Each kernel has one explicit signature (compiled once, cached by numba on disk) and paints
into ``canvas`` (B, S, S, 3) float32 in place, for the items ``idx`` (m,) int64, with
per-item parameters (m,) float64 aligned to ``idx``. Shapes are visited only inside their
bounding box, which is what makes several thousand scenes/s possible on one core;
coordinates are normalised (pixel centre of column j is (j + 0.5) / S), so every size works.
Compositing is "over": c <- c + a * (colour - c), with a = coverage * opacity.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Argument types of the kernels' single signatures: canvas, item indices, per-item scalars, per-item RGB.
CANVAS, IDX, VEC, RGB, ALPHA = "f4[:, :, :, ::1]", "i8[::1]", "f8[::1]", "f8[:, ::1]", "f4[:, :, ::1]"


def _sig(*args: str) -> str:
    return f"void({', '.join(args)})"


@njit(cache=True, nogil=True)
def _blend(canvas, b, i, j, a, r, g, bl):
    """Pixel (i, j) of item b <- itself + a * ((r, g, bl) - itself)."""
    canvas[b, i, j, 0] += a * (r - canvas[b, i, j, 0])
    canvas[b, i, j, 1] += a * (g - canvas[b, i, j, 1])
    canvas[b, i, j, 2] += a * (bl - canvas[b, i, j, 2])


@njit(_sig(CANVAS, IDX, VEC, VEC, VEC, VEC, RGB, VEC, "f8"), cache=True, nogil=True)
def fill_boxes(canvas, idx, x0, x1, y0, y1, color, opacity, soft):
    """Axis-aligned soft rectangles [x0, x1] x [y0, y1]; color (m, 3); opacity (m,); soft = edge width."""
    size = canvas.shape[1]
    for k in range(idx.shape[0]):
        op = opacity[k]
        if op <= 0.0 or x1[k] <= x0[k] or y1[k] <= y0[k]:
            continue
        b = idx[k]
        r0 = max(int((y0[k] - soft) * size), 0)
        r1 = min(int((y1[k] + soft) * size) + 1, size)
        c0 = max(int((x0[k] - soft) * size), 0)
        c1 = min(int((x1[k] + soft) * size) + 1, size)
        for i in range(r0, r1):
            v = (i + 0.5) / size
            dy = max(y0[k] - v, v - y1[k])
            for j in range(c0, c1):
                u = (j + 0.5) / size
                d = max(max(x0[k] - u, u - x1[k]), dy)
                a = 0.5 - d / soft
                if a <= 0.0:
                    continue
                a = min(a, 1.0) * op
                _blend(canvas, b, i, j, a, color[k, 0], color[k, 1], color[k, 2])


@njit(_sig(CANVAS, IDX, VEC, VEC, VEC, VEC, VEC, RGB, VEC, "f8"), cache=True, nogil=True)
def fill_ellipses(canvas, idx, cx, cy, rx, ry, theta, color, opacity, soft):
    """Soft filled ellipses with centre (cx, cy), radii (rx, ry), rotated by theta (radians)."""
    size = canvas.shape[1]
    for k in range(idx.shape[0]):
        op = opacity[k]
        if op <= 0.0 or rx[k] <= 0.0 or ry[k] <= 0.0:
            continue
        b = idx[k]
        c, s = np.cos(theta[k]), np.sin(theta[k])
        reach = max(rx[k], ry[k]) + soft
        r0 = max(int((cy[k] - reach) * size), 0)
        r1 = min(int((cy[k] + reach) * size) + 1, size)
        c0 = max(int((cx[k] - reach) * size), 0)
        c1 = min(int((cx[k] + reach) * size) + 1, size)
        scale = min(rx[k], ry[k])  # turns the normalised radius into an approximate distance
        for i in range(r0, r1):
            dv = (i + 0.5) / size - cy[k]
            for j in range(c0, c1):
                du = (j + 0.5) / size - cx[k]
                p = (du * c + dv * s) / rx[k]
                q = (dv * c - du * s) / ry[k]
                d = (np.sqrt(p * p + q * q) - 1.0) * scale
                a = 0.5 - d / soft
                if a <= 0.0:
                    continue
                a = min(a, 1.0) * op
                _blend(canvas, b, i, j, a, color[k, 0], color[k, 1], color[k, 2])


@njit(_sig(CANVAS, IDX, ALPHA, CANVAS), cache=True, nogil=True)
def paint_field(canvas, idx, alpha, field):
    """Composite a per-pixel alpha (m, S, S) with a per-pixel colour field (m, S, S, 3)."""
    size = canvas.shape[1]
    for k in range(idx.shape[0]):
        b = idx[k]
        for i in range(size):
            for j in range(size):
                a = alpha[k, i, j]
                if a <= 0.0:
                    continue
                _blend(canvas, b, i, j, min(a, 1.0), field[k, i, j, 0], field[k, i, j, 1], field[k, i, j, 2])


@njit(_sig(CANVAS, RGB, RGB, RGB, VEC, VEC, VEC, VEC, VEC), cache=True, nogil=True)
def fill_background(canvas, top, mid, bottom, split, wave_fx, wave_fy, wave_phase, wave_amp):
    """Every item: top->mid gradient down to `split`, a soft 0.2-high blend into `bottom`, plus a plane wave."""
    n, size = canvas.shape[0], canvas.shape[1]
    sx, cx = np.empty(size), np.empty(size)
    col = np.empty(3)
    for b in range(n):
        for j in range(size):  # sin(a + b) = sin a cos b + cos a sin b: the wave is separable
            a = 2.0 * np.pi * wave_fx[b] * (j + 0.5) / size + wave_phase[b]
            sx[j], cx[j] = np.sin(a), np.cos(a)
        for i in range(size):
            v = (i + 0.5) / size
            t = min(v / split[b], 1.0)
            t2 = min(max((v - split[b]) / 0.2, 0.0), 1.0)
            for ch in range(3):
                upper = top[b, ch] + t * (mid[b, ch] - top[b, ch])
                col[ch] = upper + t2 * (bottom[b, ch] - upper)
            a = 2.0 * np.pi * wave_fy[b] * v
            sy, cy = wave_amp[b] * np.sin(a), wave_amp[b] * np.cos(a)
            for j in range(size):
                w = sx[j] * cy + cx[j] * sy
                canvas[b, i, j, 0] = col[0] + w
                canvas[b, i, j, 1] = col[1] + w
                canvas[b, i, j, 2] = col[2] + w


@njit(_sig(CANVAS, IDX, VEC, VEC, RGB, RGB, "f8"), cache=True, nogil=True)
def fill_sky(canvas, idx, horizon, tilt, top, low, soft):
    """Vertical top->low gradient above the line y = horizon + tilt * (x - 0.5), soft-edged."""
    size = canvas.shape[1]
    for k in range(idx.shape[0]):
        b = idx[k]
        h = horizon[k]
        r1 = min(int((h + abs(tilt[k]) * 0.5 + soft) * size) + 1, size)
        for i in range(r1):
            v = (i + 0.5) / size
            t = min(v / h, 1.0)
            r = top[k, 0] + t * (low[k, 0] - top[k, 0])
            g = top[k, 1] + t * (low[k, 1] - top[k, 1])
            bl = top[k, 2] + t * (low[k, 2] - top[k, 2])
            for j in range(size):
                edge = h + tilt[k] * ((j + 0.5) / size - 0.5)
                a = 0.5 - (v - edge) / (2.0 * soft)
                if a <= 0.0:
                    continue
                _blend(canvas, b, i, j, min(a, 1.0), r, g, bl)


@njit(_sig(CANVAS, IDX, VEC, RGB, RGB, VEC, VEC, VEC, "f8"), cache=True, nogil=True)
def fill_water(canvas, idx, top, base, light, freq, wob_freq, wob_phase, soft):
    """Band below y = top: colour `base` with bright wavy crests (stripes denser with depth)."""
    size = canvas.shape[1]
    wob = np.empty(size)
    for k in range(idx.shape[0]):
        b = idx[k]
        for j in range(size):
            wob[j] = 1.5 * np.sin(2.0 * np.pi * wob_freq[k] * (j + 0.5) / size + wob_phase[k])
        r0 = max(int((top[k] - soft) * size), 0)
        for i in range(r0, size):
            v = (i + 0.5) / size
            a = min(0.5 - (top[k] - v) / (2.0 * soft), 1.0)
            if a <= 0.0:
                continue
            depth = max(v - top[k], 0.0)
            phase = 2.0 * np.pi * freq[k] * depth * (1.0 + 2.0 * depth)
            for j in range(size):
                s = 0.5 + 0.5 * np.sin(phase + wob[j])
                crest = 0.6 * s * s * s * s  # thin bright crests
                _blend(
                    canvas,
                    b,
                    i,
                    j,
                    a,
                    base[k, 0] + crest * (light[k, 0] - base[k, 0]),
                    base[k, 1] + crest * (light[k, 1] - base[k, 1]),
                    base[k, 2] + crest * (light[k, 2] - base[k, 2]),
                )


@njit(_sig(CANVAS, RGB, CANVAS, "f8", "u1[:, :, :, ::1]"), cache=True, nogil=True)
def finish(canvas, gain, uniform, amplitude, out):
    """out uint8 = round(clip(255 * (canvas * gain + amplitude * (2 * uniform - 1)), 0, 255)); gain (B, 3)."""
    n, size = canvas.shape[0], canvas.shape[1]
    for b in range(n):
        for i in range(size):
            for j in range(size):
                for ch in range(3):
                    noise = amplitude * (2.0 * uniform[b, i, j, ch] - 1.0)
                    x = 255.0 * (canvas[b, i, j, ch] * gain[b, ch] + noise) + 0.5
                    out[b, i, j, ch] = np.uint8(min(max(x, 0.0), 255.0))


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel once, on a 1x16x16 canvas."""
    canvas = np.zeros((1, 16, 16, 3), np.float32)
    idx = np.zeros(1, np.int64)
    one = np.full(1, 0.5)
    color = np.ones((1, 3))
    fill_boxes(canvas, idx, one * 0.5, one, one * 0.5, one, color, one, 0.1)
    fill_ellipses(canvas, idx, one, one, one * 0.2, one * 0.2, one * 0.0, color, one, 0.1)
    paint_field(canvas, idx, np.ones((1, 16, 16), np.float32), np.ones((1, 16, 16, 3), np.float32))
    fill_background(canvas, color, color, color, one, one, one, one, one)
    fill_sky(canvas, idx, one, one * 0.1, color, color, 0.1)
    fill_water(canvas, idx, one, color, color, one, one, one, 0.1)
    finish(canvas, color, canvas, 0.01, np.empty(canvas.shape, np.uint8))
