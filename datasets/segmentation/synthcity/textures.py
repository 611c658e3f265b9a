"""Procedural appearance of synthcity surfaces: hashed value noise, box-filtered stripes,
sprite silhouettes and one shader per quad material.

Every texture is a function of surface coordinates in metres, so it moves exactly with its
surface and the ground-truth flow stays exact. Detail finer than a pixel's footprint (``fp``,
metres per pixel on the surface) is faded out or box-filtered, so far texture does not shimmer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

F32 = np.float32


_M1, _M2, _M3 = np.uint32(0x8DA6B343), np.uint32(0xD8163841), np.uint32(0xCB1AB31F)
_M12 = np.uint32((0x8DA6B343 + 0xD8163841) & 0xFFFFFFFF)


def _fmix(h: np.ndarray) -> np.ndarray:
    # Integer avalanche of a uint32 lattice key, mapped to float32 in [0, 1).
    h = h ^ (h >> np.uint32(16))
    h *= np.uint32(0x7FEB352D)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x846CA68B)
    h ^= h >> np.uint32(16)
    return (h >> np.uint32(8)).astype(F32) * F32(1.0 / (1 << 24))


def _key(ix: np.ndarray, iy: np.ndarray, seed) -> np.ndarray:
    # Lattice key; additive, so neighbouring lattice points are key + _M1 and key + _M2.
    return ix * _M1 + iy * _M2 + np.atleast_1d(seed).astype(np.uint32) * _M3


def _lattice(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xf = np.floor(x)
    # Clipped so the int32 cast stays defined for the ground near the horizon (its far-away
    # texture is faded out anyway).
    return np.clip(xf, -(2**30), 2**30).astype(np.int32).view(np.uint32), x - xf


def hash01(x: np.ndarray, y: np.ndarray, seed) -> np.ndarray:
    """Uniform float32 in [0, 1) per unit lattice cell containing (x, y): a stateless hash, so
    textures are deterministic and need no stored noise tables."""
    return _fmix(_key(_lattice(x)[0], _lattice(y)[0], seed))


def value_noise(x: np.ndarray, y: np.ndarray, seed) -> np.ndarray:
    """Smooth noise in [0, 1) with unit lattice spacing (bilinear over hashed corners)."""
    ix, fx = _lattice(x)
    iy, fy = _lattice(y)
    fx = fx * fx * (3 - 2 * fx)
    fy = fy * fy * (3 - 2 * fy)
    k = _key(ix, iy, seed)
    a, b, c, d = _fmix(k), _fmix(k + _M1), _fmix(k + _M2), _fmix(k + _M12)
    return a + (b - a) * fx + (c - a) * fy + (a - b - c + d) * (fx * fy)


def fbm(x, y, seed, cells: tuple, amps: tuple, fp: np.ndarray) -> np.ndarray:
    """Zero-mean sum of noise octaves (cell sizes in metres); an octave fades out as the pixel
    footprint approaches its cell size, which is a cheap stand-in for mip-mapping."""
    out = np.zeros(np.shape(x), F32)
    for k, (cell, amp) in enumerate(zip(cells, amps)):
        w = np.clip(cell / (2 * fp) - 0.5, 0, 1)
        if not w.any():
            continue
        out += (amp * w) * (value_noise(x / cell, y / cell, seed + 7919 * (k + 1)) - 0.5)
    return out


def _stripe_integral(x, start, length, period):
    # Integral over [0, x] of the indicator of [start, start + length) (+ k * period).
    if period is None:
        return np.clip(x - start, 0, length)
    k = np.floor(x / period)
    return k * length + np.clip(x - k * period - start, 0, length)


def box_cover(x, fp, start, length, period=None) -> np.ndarray:
    """Fraction of the pixel footprint [x - fp/2, x + fp/2] covered by the stripe
    [start, start + length), repeated every `period` if given (exact box filter)."""
    w = np.maximum(fp, 1e-4)
    hi = _stripe_integral(x + w / 2, start, length, period)
    lo = _stripe_integral(x - w / 2, start, length, period)
    return ((hi - lo) / w).astype(F32)


def _seg_dist2(px, py, ax, ay, bx, by):
    dx, dy = bx - ax, by - ay
    t = np.clip(((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy), 0, 1)
    ex, ey = px - ax - t * dx, py - ay - t * dy
    return ex * ex + ey * ey


def person_regions(x, y, phase, swing, lift) -> np.ndarray:
    """Walking silhouette: x is the offset from the body axis, y the height above the feet,
    both in body heights. Returns 0 outside, 1 head, 2 torso and arms, 3 legs."""
    s = np.sin(phase)
    reg = np.zeros(np.shape(x), np.uint8)
    for side in (-1.0, 1.0):
        ang = side * swing * s
        hip_x = side * 0.045
        foot_x = hip_x + 0.47 * np.sin(ang)
        foot_y = 0.5 - 0.47 * np.cos(ang) + lift * np.maximum(side * s, 0)
        reg[_seg_dist2(x, y, hip_x, 0.5, foot_x, foot_y) < 0.043**2] = 3
        arm = -0.8 * ang
        sh_x = side * 0.115
        hand_x, hand_y = sh_x + 0.33 * np.sin(arm), 0.8 - 0.33 * np.cos(arm)
        reg[_seg_dist2(x, y, sh_x, 0.8, hand_x, hand_y) < 0.028**2] = 2
    torso = (y >= 0.47) & (y <= 0.82) & (np.abs(x) < 0.075 + 0.05 * (y - 0.47) / 0.35)
    reg[torso] = 2
    head = (x * x + (y - 0.92) ** 2 < 0.062**2) | ((np.abs(x) < 0.028) & (y > 0.8) & (y < 0.88))
    reg[head] = 1
    return reg


def canopy_mask(un, vn, seed) -> np.ndarray:
    """Irregular tree crown inside the unit square (blobby ellipse with a noisy rim)."""
    r = np.hypot(2 * un - 1, 2 * vn - 1)
    return r + 0.7 * (value_noise(un * 6, vn * 6, seed) - 0.5) < 0.8


SIGN_CIRCLE, SIGN_TRIANGLE, SIGN_SQUARE, SIGN_DIAMOND = 0, 1, 2, 3


def sign_mask(un, vn, shape) -> np.ndarray:
    """Sign plate outline in the unit square for shape codes SIGN_*."""
    dx, dy = un - 0.5, vn - 0.5
    circle = dx * dx + dy * dy < 0.25
    tri = (vn > 0.07) & (np.abs(dx) < (0.93 - vn) * 0.58)
    diamond = np.abs(dx) + np.abs(dy) < 0.5
    square = np.ones(np.shape(un), bool)
    return np.select(
        [shape == SIGN_CIRCLE, shape == SIGN_TRIANGLE, shape == SIGN_DIAMOND],
        [circle, tri, diamond],
        square,
    )


@dataclass
class Hits:
    """The visible points of one material in a frame (one entry per pixel)."""

    u: np.ndarray  # metres along the quad's first in-plane axis, from its low edge
    v: np.ndarray  # metres along the second in-plane axis (height for vertical quads)
    su: np.ndarray  # quad extent along u (metres)
    sv: np.ndarray  # quad extent along v
    fpu: np.ndarray  # pixel footprint along u (metres)
    fpv: np.ndarray
    col: np.ndarray  # (n, 3) base colour
    prm: np.ndarray  # (n, 8) material parameters
    seed: np.ndarray  # (n,) uint32
    kind: np.ndarray  # (n,) material variant
    frame: int


def _mix(a, b, w):
    return a + (b - a) * np.asarray(w, F32)[:, None]


def shade_facade(h: Hits) -> np.ndarray:
    """Plaster or brick wall; front faces (kind 0) get floors of windows and shop windows.
    prm: column period, window width, floor height, window height, sill, ground-floor height,
    brick flag."""
    pu, ww, fh, wh, sill, gf, brick = (h.prm[:, i] for i in range(7))
    u, v, fp = h.u, h.v, np.maximum(h.fpu, h.fpv)
    tex = 1 + fbm(u, v, h.seed, (0.1, 0.45, 2.0), (0.25, 0.2, 0.15), fp)
    tex *= 1 - 0.25 * (brick > 0.5) * box_cover(v, h.fpv, 0, 0.015, 0.08)
    front = h.kind == 0
    vv = v - gf
    upper = front & (vv > 0) & (v < h.sv - 1.0) & (u > 0.6) & (u < h.su - 0.6)
    tex *= 1 - 0.3 * upper * box_cover(vv, h.fpv, np.maximum(sill - 0.2, 0), 0.12, fh)
    tex *= np.where(front & (v > h.sv - 0.6), 0.8, 1.0)
    col = h.col * tex[:, None]
    win = upper * box_cover(u, h.fpu, (pu - ww) / 2, ww, pu) * box_cover(vv, h.fpv, sill, wh, fh)
    g = hash01(u / pu, vv / fh, h.seed)
    glass = (25 + 80 * g)[:, None] * np.array([0.85, 0.95, 1.1], F32)
    glass = np.where((g > 0.93)[:, None], np.array([215, 190, 130], F32), glass)
    col = _mix(col, glass, win)
    shop = (front & (u > 0.4) & (u < h.su - 0.4)) * box_cover(v, h.fpv, 0.5, gf - 1.1)
    shop *= box_cover(u, h.fpu, 0.5, 2 * pu - 1.0, 2 * pu)
    return _mix(col, np.array([40, 45, 50], F32) + 25 * g[:, None], shop)


def shade_canopy(h: Hits) -> np.ndarray:
    """Leafy crown: strong multi-scale noise, darker underneath."""
    n = fbm(h.u, h.v, h.seed, (0.07, 0.2, 0.6), (0.9, 0.6, 0.4), np.maximum(h.fpu, h.fpv))
    return h.col * ((0.65 + 0.45 * h.v / h.sv) * (1 + n))[:, None]


def shade_bark(h: Hits) -> np.ndarray:
    """Tree trunk."""
    n = fbm(h.u, h.v, h.seed, (0.04, 0.15), (0.5, 0.3), np.maximum(h.fpu, h.fpv))
    return h.col * (1 + n)[:, None]


def shade_pole(h: Hits) -> np.ndarray:
    """Metal pole or lamp arm, shaded like a cylinder across its width."""
    n = fbm(h.u, h.v, h.seed, (0.3,), (0.15,), np.maximum(h.fpu, h.fpv))
    return h.col * ((0.7 + 0.4 * np.sin(np.pi * h.u / h.su)) * (1 + n))[:, None]


def shade_sign(h: Hits) -> np.ndarray:
    """Sign plate: kind is the SIGN_* shape, prm[0] the colour scheme (0-2)."""
    un, vn = h.u / h.su, h.v / h.sv
    ci, cj = 0.5, np.where(h.kind == SIGN_TRIANGLE, 0.4, 0.5)
    inner = sign_mask(ci + (un - ci) * 1.35, cj + (vn - cj) * 1.35, h.kind)
    scheme = h.prm[:, 0].astype(np.int64)
    rim = np.array([[200, 30, 30], [235, 235, 235], [235, 235, 235]], F32)[scheme]
    fill = np.array([[235, 235, 235], [30, 80, 175], [200, 30, 30]], F32)[scheme]
    rim = np.where((h.kind == SIGN_DIAMOND)[:, None], np.array([235, 235, 235], F32), rim)
    fill = np.where((h.kind == SIGN_DIAMOND)[:, None], np.array([240, 190, 30], F32), fill)
    col = np.where(inner[:, None], fill, rim)
    bar = inner & (np.abs(vn - 0.45) < 0.07) & (np.abs(un - 0.5) < 0.2)
    return np.where(bar[:, None], np.where(scheme[:, None] == 0, F32(30), F32(240)), col)


def shade_traffic_light(h: Hits) -> np.ndarray:
    """Dark housing with three lamps; prm[0] says which one is lit (0 red, 1 amber, 2 green)."""
    col = np.full((len(h.u), 3), 35, F32)
    lit = np.array([[255, 40, 30], [255, 190, 20], [40, 230, 90]], F32)
    for k, vc in enumerate((0.8, 0.5, 0.2)):
        lamp = (h.u - h.su / 2) ** 2 + (h.v - vc * h.sv) ** 2 < (0.3 * h.su) ** 2
        on = h.prm[:, 0].astype(np.int64) == k
        col[lamp] = np.where(on[lamp, None], lit[k], lit[k] * 0.25)
    return col


CAR_SIDE, CAR_REAR, CAR_FRONT, CAR_TOP, CABIN = 0, 1, 2, 3, 4


def shade_car(h: Hits) -> np.ndarray:
    """Car box faces: kind is CAR_* for the lower body, CABIN + CAR_* for the cabin."""
    un, vn = h.u / h.su, h.v / h.sv
    n = fbm(h.u, h.v, h.seed, (0.25,), (0.08,), np.maximum(h.fpu, h.fpv))
    col = h.col * ((0.85 + 0.2 * vn) * (1 + n))[:, None]
    face, cabin = h.kind % CABIN, h.kind >= CABIN
    dark = np.array([22, 22, 25], F32)
    side = ~cabin & (face == CAR_SIDE)
    for wheel_u in (np.full_like(h.u, 0.8), h.su - 0.8):
        r2 = (h.u - wheel_u) ** 2 + (h.v - 0.2) ** 2
        col[side & (r2 < 0.32**2)] = dark
        col[side & (r2 < 0.14**2)] = (120, 120, 125)
    col[side & (h.v < 0.06)] = dark
    col = _mix(col, dark, side * box_cover(h.u, h.fpu, h.su / 2, 0.02))
    rear, front = ~cabin & (face == CAR_REAR), ~cabin & (face == CAR_FRONT)
    corners = (np.abs(un - 0.5) > 0.33) & (vn > 0.5) & (vn < 0.72)
    col[rear & corners] = (190, 25, 20)
    col[front & corners] = (235, 235, 215)
    col[(rear | front) & (np.abs(un - 0.5) < 0.13) & (vn > 0.22) & (vn < 0.4)] = (225, 225, 215)
    col[(rear | front) & (vn < 0.15)] = dark
    col[front & (np.abs(un - 0.5) < 0.25) & (vn > 0.45) & (vn < 0.7)] = (45, 45, 50)
    glass = cabin & (face != CAR_TOP) & (un > 0.07) & (un < 0.93) & (vn > 0.1) & (vn < 0.9)
    glass &= ~((face == CAR_SIDE) & (np.abs(un - 0.5) < 0.03))
    sky_tint = (40 + 50 * vn)[:, None] * np.array([0.8, 0.9, 1.05], F32)
    return np.where(glass[:, None], sky_tint, col)


def shade_person(h: Hits) -> np.ndarray:
    """Pedestrian sprite: skin head, shirt (base colour) on torso and arms, trousers (prm 4:7)
    on legs. prm[0:4] are phase, phase rate, swing and foot lift, as for the coverage mask."""
    x = (h.u / h.su - 0.5) * h.su / h.sv
    y = h.v / h.sv
    reg = person_regions(x, y, h.prm[:, 0] + h.prm[:, 1] * h.frame, h.prm[:, 2], h.prm[:, 3])
    skin = np.array([[230, 190, 160], [200, 150, 110], [140, 95, 65], [90, 60, 40]], F32)
    col = np.where((reg == 3)[:, None], h.prm[:, 4:7], h.col)
    col = np.where((reg == 1)[:, None], skin[h.prm[:, 7].astype(np.int64) % 4], col)
    col = np.where(((reg == 1) & (y > 0.945))[:, None], F32(30), col)
    n = fbm(h.u, h.v, h.seed, (0.05, 0.15), (0.25, 0.15), np.maximum(h.fpu, h.fpv))
    return col * (1 + n)[:, None]
