"""Procedural street-scene video renderer ("synthcity").

Renders Cityscapes-like driving snippets with a dense semantic label on every frame and exact
forward and backward optical flow, in vectorised NumPy. The world is 2.5D: a textured ground
plane plus axis-aligned rectangles ("quads": building faces, car box faces, and camera-facing
sprites for trees, poles, signs and people), ray-cast per pixel inside each quad's screen
bounding box against a depth buffer. Everything is a deterministic function of the seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import textures as tx

F32 = np.float32

ROAD, SIDEWALK, BUILDING, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN = 0, 1, 2, 5, 6, 7
VEGETATION, TERRAIN, SKY, PERSON, CAR = 8, 9, 10, 11, 13

CLASS_NAMES: dict[int, str] = {
    ROAD: "road",
    SIDEWALK: "sidewalk",
    BUILDING: "building",
    POLE: "pole",
    TRAFFIC_LIGHT: "traffic light",
    TRAFFIC_SIGN: "traffic sign",
    VEGETATION: "vegetation",
    TERRAIN: "terrain",
    SKY: "sky",
    PERSON: "person",
    CAR: "car",
}

M_FACADE, M_CANOPY, M_BARK, M_POLE, M_SIGN, M_TLIGHT, M_CAR, M_PERSON = range(8)
_SHADERS = (
    tx.shade_facade,
    tx.shade_canopy,
    tx.shade_bark,
    tx.shade_pole,
    tx.shade_sign,
    tx.shade_traffic_light,
    tx.shade_car,
    tx.shade_person,
)
MASK_NONE, MASK_CANOPY, MASK_PERSON, MASK_SIGN = range(4)

FOCAL = 1.0  # focal length in image widths (horizontal field of view ~53 degrees)
NEAR = 0.1  # metres
BATCH_SIDES = (6, 12, 24)  # quads with screen boxes up to these sizes are rastered in batches
SID_SKY, SID_GROUND = 0, 1  # surface ids; quad k has surface id k + 2

# World axes: X right (across the street), Y up, Z forward (along the street). A quad lies in
# the plane {axis = c}; its (u, v) coordinates are these two world axes, per normal axis.
_U_AXIS = np.array([2, 0, 0])
_V_AXIS = np.array([1, 2, 1])

_BUILDING_COLS = (
    (190, 175, 150),
    (170, 160, 150),
    (150, 110, 90),
    (200, 195, 185),
    (140, 130, 120),
    (180, 150, 120),
    (120, 120, 125),
    (210, 200, 170),
    (160, 90, 70),
    (175, 185, 190),
)
_CAR_COLS = (
    (225, 225, 225),
    (30, 30, 32),
    (150, 152, 155),
    (95, 95, 100),
    (30, 50, 110),
    (150, 25, 25),
    (20, 70, 50),
    (200, 170, 60),
    (90, 60, 40),
    (180, 180, 170),
)
_WALK_COLS = ((160, 160, 155), (175, 165, 150), (150, 138, 135), (135, 135, 140))


@dataclass(frozen=True)
class RenderedSnippet:
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    labels: np.ndarray  # (T, H, W) uint8 Cityscapes train ids
    flow: np.ndarray  # (T-1, 2, H, W) float32 forward flow (dx, dy) in pixels, frame t -> t+1
    flow_valid: np.ndarray  # (T-1, H, W) bool: False where occluded in t+1 or out of view
    # (T-1, 2, H, W) float32 backward flow at the pixels of frame t+1: pixel (x, y) of frame t+1
    # shows the surface point that was at (x + dx, y + dy) in frame t (the codec motion-vector
    # convention, src - dst). Computed by reprojection like `flow`, not by inverting it.
    backward_flow: np.ndarray
    backward_valid: np.ndarray  # (T-1, H, W) bool: False where hidden in t or out of t's view


@dataclass
class _Quads:
    axis: np.ndarray  # (N,) normal axis 0/1/2
    c: np.ndarray  # plane coordinate in the owning object's frame at frame 0
    lo1: np.ndarray  # extent along u: [lo1, hi1]; along v: [lo2, hi2]
    hi1: np.ndarray
    lo2: np.ndarray
    hi2: np.ndarray
    facing: np.ndarray  # +1/-1: seen only from the positive/negative side; 0: both
    obj: np.ndarray  # moving object index, -1 for static
    material: np.ndarray  # M_*
    label: np.ndarray
    kind: np.ndarray  # material variant
    mask: np.ndarray  # MASK_*
    light: np.ndarray  # brightness factor of the face
    max_dist: np.ndarray  # not drawn beyond this depth
    seed: np.ndarray
    col: np.ndarray  # (N, 3) base colour
    prm: np.ndarray  # (N, 8) material parameters
    corners: np.ndarray  # (N, 4, 3) world corners at frame 0
    su: np.ndarray  # hi1 - lo1
    sv: np.ndarray


_QUAD_DTYPES = {
    **dict.fromkeys(("axis", "facing", "obj", "material", "kind", "mask"), np.int64),
    **dict.fromkeys(("c", "lo1", "hi1", "lo2", "hi2", "max_dist"), np.float64),
    **dict.fromkeys(("light", "col", "prm"), F32),
    "label": np.uint8,
    "seed": np.uint32,
}
_QUAD_DEFAULTS = {
    "facing": 0,
    "obj": -1,
    "kind": 0,
    "mask": MASK_NONE,
    "prm": (),
    "seed": 0,
    "max_dist": 150.0,
}


def _look(material: int, label: int, col, **extra) -> dict:
    # Keywords for _QuadBuilder.add: what a quad looks like and is labelled.
    return {"material": material, "label": label, "col": col, **extra}


def _light(axis: int, facing: int) -> float:
    # Fixed sun from the left, slightly behind the camera.
    if axis == 1:
        return 1.08
    if axis == 0:
        return 1.0 if facing > 0 else 0.78
    return {-1: 0.9, 0: 0.92, 1: 0.72}[facing]


class _QuadBuilder:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, axis: int, c: float, u0: float, u1: float, v0: float, v1: float, **kw) -> None:
        # kw: material, label, col, and optionally the other _Quads fields.
        row = {**_QUAD_DEFAULTS, **kw, "axis": axis, "c": c, "lo1": u0, "hi1": u1}
        row.update(lo2=v0, hi2=v1, prm=tuple(row["prm"]) + (0.0,) * (8 - len(row["prm"])))
        row.setdefault("light", _light(axis, row["facing"]))
        self.rows.append(row)

    def sprite(self, x0, x1, y0, y1, z, **kw) -> None:
        self.add(2, z, x0, x1, y0, y1, **kw)

    def box(self, x0, x1, y0, y1, z0, z1, kinds: dict[str, int], **kw) -> None:
        faces = {
            "x-": (0, x0, z0, z1, y0, y1, -1),
            "x+": (0, x1, z0, z1, y0, y1, 1),
            "y+": (1, y1, x0, x1, z0, z1, 1),
            "z-": (2, z0, x0, x1, y0, y1, -1),
            "z+": (2, z1, x0, x1, y0, y1, 1),
        }
        for name, kind in kinds.items():
            a, c, u0, u1, v0, v1, facing = faces[name]
            self.add(a, c, u0, u1, v0, v1, facing=facing, kind=kind, **kw)

    def finish(self) -> _Quads:
        f = {k: np.array([r[k] for r in self.rows], dt) for k, dt in _QUAD_DTYPES.items()}
        su, sv = (f["hi1"] - f["lo1"]).astype(F32), (f["hi2"] - f["lo2"]).astype(F32)
        q = _Quads(**f, corners=np.zeros((len(self.rows), 4, 3)), su=su, sv=sv)
        n = np.arange(len(self.rows))
        q.corners[n, :, q.axis] = q.c[:, None]
        q.corners[n, :, _U_AXIS[q.axis]] = np.stack([q.lo1, q.hi1, q.hi1, q.lo1], 1)
        q.corners[n, :, _V_AXIS[q.axis]] = np.stack([q.lo2, q.lo2, q.hi2, q.hi2], 1)
        return q


@dataclass
class _Street:
    lanes: int
    lane_w: float
    cam_lane: int
    parking: np.ndarray  # per side (0 left, 1 right)
    road: np.ndarray  # road half-width per side, parking lane included
    grass: np.ndarray  # terrain strip between road and sidewalk
    walk: np.ndarray  # sidewalk width
    outer_terrain: np.ndarray  # beyond the sidewalk: terrain (True) or paving
    asphalt: np.ndarray
    walk_col: np.ndarray
    tile: float
    seed: int
    cross_z: float = np.nan  # zebra crossing start (nan: none)


@dataclass
class _World:
    height: int
    width: int
    f: float
    cam_pos: np.ndarray  # (T, 3)
    cam_rot: np.ndarray  # (T, 3, 3) camera-to-world; camera axes x right, y up, z forward
    quads: _Quads
    obj_off: np.ndarray  # (T, n_obj + 1, 3) object displacement since frame 0; last row zeros
    street: _Street
    horizon: np.ndarray
    zenith: np.ndarray
    cloud_cover: float
    sky_seed: int
    haze: float

    @property
    def cx(self) -> float:
        return (self.width - 1) / 2

    @property
    def cy(self) -> float:
        return (self.height - 1) / 2


@dataclass
class _Frame:
    o: np.ndarray  # camera position
    R: np.ndarray  # camera-to-world rotation
    D: np.ndarray  # (3, H, W) world ray directions with unit camera-z, so ray t = depth
    depth: np.ndarray  # (H, W) camera-z depth, inf for sky
    sid: np.ndarray  # (H, W) surface id


def _smooth_noise(rng: np.random.Generator, n: int, fmin: float, fmax: float) -> np.ndarray:
    # A few random sinusoids (frequencies in cycles per frame): smooth, amplitude <= 1.
    freq, phase = rng.uniform(fmin, fmax, (3, 1)), rng.uniform(0, 2 * np.pi, (3, 1))
    amp = rng.uniform(0.5, 1, (3, 1))
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) + phase)).sum(0) / amp.sum()


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    # Positive yaw turns right, positive pitch looks down.
    (cy, cp, cr), (sy, sp, sr) = np.cos([yaw, pitch, roll]), np.sin([yaw, pitch, roll])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return ry @ rx @ rz


def _make_street(rng: np.random.Generator) -> _Street:
    lanes = 1 if rng.random() < 0.55 else 2
    lane_w = rng.uniform(3.0, 3.5)
    parking = rng.random(2) < 0.65
    return _Street(
        lanes=lanes,
        lane_w=lane_w,
        cam_lane=int(rng.integers(lanes)),
        parking=parking,
        road=lanes * lane_w + 2.2 * parking,
        grass=np.where(rng.random(2) < 0.3, rng.uniform(1.0, 2.5, 2), 0.0),
        walk=rng.uniform(2.5, 5.0, 2),
        outer_terrain=rng.random(2) < 0.35,
        asphalt=(rng.uniform(70, 100) + rng.uniform(-4, 4, 3)).astype(F32),
        walk_col=(
            np.array(_WALK_COLS[rng.integers(len(_WALK_COLS))]) + rng.uniform(-8, 8, 3)
        ).astype(F32),
        tile=rng.uniform(0.3, 0.6),
        seed=int(rng.integers(1 << 30)),
    )


def _make_camera(rng: np.random.Generator, n: int, x0: float):
    moving = rng.random() > 0.12
    v0 = rng.uniform(0.25, 1.2) if moving else rng.uniform(0.0, 0.08)
    t = np.arange(n)
    speed = v0 * (1 + rng.uniform(-0.3, 0.3) * (t / max(n - 1, 1) - 0.5))
    z = np.concatenate([[0.0], np.cumsum(speed[:-1])])
    bump = 0.3 + v0  # shake grows with speed
    x = x0 + 0.15 * (v0 > 0.1) * _smooth_noise(rng, n, 0.005, 0.03)
    y = rng.uniform(1.35, 1.6) + 0.02 * bump * _smooth_noise(rng, n, 0.05, 0.3)
    deg = np.pi / 180
    yaw = rng.uniform(-1.5, 1.5) * deg * np.ones(n)
    if rng.random() < 0.45:
        t0 = rng.uniform(0, n / 2)
        s = np.clip((t - t0) / rng.uniform(n / 3, n), 0, 1)
        yaw = yaw + rng.uniform(2.5, 6) * rng.choice([-1, 1]) * deg * s * s * (3 - 2 * s)
    pitch = rng.uniform(1, 3) * deg + 0.35 * deg * bump * _smooth_noise(rng, n, 0.05, 0.3)
    roll = rng.uniform(-0.5, 0.5) * deg + 0.3 * deg * bump * _smooth_noise(rng, n, 0.05, 0.3)
    rot = np.stack([_rotation(yaw[i], pitch[i], roll[i]) for i in range(n)])
    return np.stack([x, y, z], 1), rot, speed


def _facade_style(rng) -> dict:
    col = np.array(_BUILDING_COLS[rng.integers(len(_BUILDING_COLS))]) * rng.uniform(0.85, 1.1)
    pu, fh = rng.uniform(2.2, 3.6), rng.uniform(2.9, 3.6)
    wh = fh * rng.uniform(0.4, 0.6)
    prm = (pu, pu * rng.uniform(0.35, 0.6), fh, wh, (fh - wh) * rng.uniform(0.4, 0.6))
    prm += (rng.uniform(3.5, 4.5), float(rng.random() < 0.3))
    col = np.clip(col + rng.uniform(-10, 10, 3), 0, 255)
    return _look(M_FACADE, BUILDING, col, prm=prm, seed=rng.integers(1 << 30), max_dist=1e4)


def _add_building(rng, qb: _QuadBuilder, s: int, setback: float, z0, z1, height) -> None:
    kw = _facade_style(rng)
    xs = s * setback
    qb.add(0, xs, z0, z1, 0, height, facing=-s, kind=0, **kw)
    xb = sorted((xs, s * (setback + rng.uniform(12, 25))))
    qb.add(2, z0, xb[0], xb[1], 0, height, facing=-1, kind=1, **kw)
    qb.add(2, z1, xb[0], xb[1], 0, height, facing=1, kind=1, **kw)


def _add_buildings(rng, qb: _QuadBuilder, st: _Street, z_lo: float, z_hi: float) -> None:
    for si, s in enumerate((-1, 1)):
        front = st.road[si] + st.grass[si] + st.walk[si]
        z = z_lo - rng.uniform(0, 10)
        while z < z_hi:
            if rng.random() < 0.22:
                z += rng.uniform(3, 14)  # a gap: sky and the ground behind show through
            width = rng.uniform(7, 28)
            setback = front + (rng.uniform(0.5, 4) if rng.random() < 0.5 else 0.0)
            height = rng.uniform(3.5, 6) if rng.random() < 0.15 else rng.uniform(8, 30)
            _add_building(rng, qb, s, setback, z, z + width, height)
            z += width


def _add_trees_and_poles(rng, qb: _QuadBuilder, st: _Street, z_lo: float, z_hi: float) -> None:
    for si, s in enumerate((-1, 1)):
        if rng.random() < 0.55:
            base = st.road[si] + (st.grass[si] / 2 if st.grass[si] else rng.uniform(0.8, 1.3))
            spacing = rng.uniform(7, 13)
            green = rng.uniform([40, 70, 25], [80, 120, 50])
            for z in np.arange(z_lo + rng.uniform(0, spacing), z_hi, spacing):
                if rng.random() < 0.15:
                    continue
                z += rng.uniform(-1, 1)
                x = s * (base + rng.uniform(-0.2, 0.2))
                cw = rng.uniform(3, 5.5)
                ch, hb = cw * rng.uniform(0.8, 1.2), rng.uniform(2.2, 3.5)
                tw = rng.uniform(0.22, 0.4)
                bark = rng.uniform([70, 50, 30], [110, 80, 55])
                kw = _look(M_BARK, VEGETATION, bark, seed=rng.integers(1 << 30))
                qb.sprite(x - tw / 2, x + tw / 2, 0, hb + 0.4 * ch, z, **kw)
                kw = _look(M_CANOPY, VEGETATION, green * rng.uniform(0.85, 1.15), mask=MASK_CANOPY)
                kw.update(seed=rng.integers(1 << 30), max_dist=250.0)
                qb.sprite(x - cw / 2, x + cw / 2, hb, hb + ch, z - 0.05, **kw)
        if rng.random() < 0.7:
            x, h = s * (st.road[si] + 0.5), rng.uniform(6, 8)
            col = rng.uniform(90, 150) * np.ones(3)
            spacing = rng.uniform(18, 32)
            for z in np.arange(z_lo + rng.uniform(0, spacing), z_hi, spacing):
                kw = _look(M_POLE, POLE, col, seed=rng.integers(1 << 30))
                qb.sprite(x - 0.09, x + 0.09, 0, h, z, **kw)
                arm = sorted((x, x - s * 1.6))
                qb.sprite(arm[0], arm[1], h - 0.12, h, z - 0.01, **kw)


def _add_signs(rng, qb: _QuadBuilder, st: _Street, z_lo: float, z_hi: float) -> None:
    for _ in range(rng.integers(2, 7)):
        si = int(rng.integers(2))
        x = (2 * si - 1) * (st.road[si] + 0.4)
        z = rng.uniform(z_lo + 20, z_hi - 40)
        post, size = rng.uniform(2.0, 2.4), rng.uniform(0.6, 0.8)
        kw = _look(M_POLE, POLE, (120, 120, 125), seed=rng.integers(1 << 30))
        qb.sprite(x - 0.035, x + 0.035, 0, post, z, **kw)
        stack = [(post - 0.5 * size, int(rng.integers(4)))]
        if rng.random() < 0.3:
            stack.append((post - 1.6 * size, tx.SIGN_SQUARE))
        for y0, shape in stack:
            kw = _look(M_SIGN, TRAFFIC_SIGN, (0, 0, 0), kind=shape, mask=MASK_SIGN, max_dist=120.0)
            kw.update(prm=(int(rng.integers(3)),), seed=rng.integers(1 << 30))
            qb.sprite(x - size / 2, x + size / 2, y0, y0 + size, z - 0.03, **kw)


def _add_traffic_lights(rng, qb: _QuadBuilder, st: _Street, z: float) -> None:
    state = int(rng.integers(3))
    for si, s in enumerate((-1, 1)):
        x = s * (st.road[si] + 0.4)
        kw = _look(M_POLE, POLE, (70, 72, 75), seed=rng.integers(1 << 30))
        qb.sprite(x - 0.06, x + 0.06, 0, 3.0, z, **kw)
        kw = _look(M_TLIGHT, TRAFFIC_LIGHT, (35, 35, 35), prm=(state,))
        qb.sprite(x - 0.16, x + 0.16, 2.4, 3.25, z - 0.04, **kw)


def _add_car(rng, qb: _QuadBuilder, x, z0, length, forward: bool, obj: int = -1) -> None:
    w, bh, ch = rng.uniform(1.65, 1.9), rng.uniform(0.9, 1.05), rng.uniform(0.45, 0.6)
    col = np.array(_CAR_COLS[rng.integers(len(_CAR_COLS))]) + rng.uniform(-10, 10, 3)
    kw = _look(M_CAR, CAR, np.clip(col, 0, 255), obj=obj, seed=rng.integers(1 << 30))
    kw["max_dist"] = 180.0
    back, front = (tx.CAR_REAR, tx.CAR_FRONT) if forward else (tx.CAR_FRONT, tx.CAR_REAR)
    kinds = {"x-": tx.CAR_SIDE, "x+": tx.CAR_SIDE, "y+": tx.CAR_TOP, "z-": back, "z+": front}
    qb.box(x - w / 2, x + w / 2, 0.12, bh, z0, z0 + length, kinds, **kw)
    c0, c1 = (0.22, 0.75) if forward else (0.25, 0.78)
    cabin = {k: v + tx.CABIN for k, v in kinds.items()}
    x0, x1 = x - w / 2 + 0.1, x + w / 2 - 0.1
    qb.box(x0, x1, bh, bh + ch, z0 + c0 * length, z0 + c1 * length, cabin, **kw)


def _add_person(rng, qb: _QuadBuilder, x, z, height, speed, obj: int, gait: tuple) -> None:
    # gait: (swing, lift) amplitudes of the walking silhouette, see textures.person_regions.
    w = 0.42 * height
    walking = speed > 0
    prm = (rng.uniform(0, 2 * np.pi), 0.33 * speed / 0.08, gait[0] * walking, gait[1] * walking)
    prm += (*rng.uniform(15, 120, 3), int(rng.integers(4)))
    kw = _look(M_PERSON, PERSON, rng.uniform(20, 230, 3), mask=MASK_PERSON, obj=obj, prm=prm)
    kw.update(seed=rng.integers(1 << 30), light=0.95, max_dist=120.0)
    qb.sprite(x - w / 2, x + w / 2, 0, height, z, **kw)


class _Movers:
    """Per-frame displacements of independently moving objects (constant velocities)."""

    def __init__(self, n_frames: int) -> None:
        self.t = np.arange(n_frames)[:, None]
        self.tracks: list[np.ndarray] = []

    def add(self, vx: float = 0.0, vz: float = 0.0) -> int:
        self.tracks.append(self.t * np.array([vx, 0.0, vz]))
        return len(self.tracks) - 1

    def offsets(self) -> np.ndarray:
        return np.stack(self.tracks + [np.zeros((len(self.t), 3))], 1)


def _add_parked_cars(rng, qb, st: _Street, z_lo: float, z_hi: float) -> list[tuple]:
    right = []
    for si, s in enumerate((-1, 1)):
        if not st.parking[si]:
            continue
        x = s * (st.lanes * st.lane_w + 1.1)
        z = z_lo + rng.uniform(0, 5)
        while z < z_hi - 40:
            if rng.random() < 0.2:
                z += rng.uniform(5, 20)
            length = rng.uniform(3.9, 4.9)
            _add_car(rng, qb, x, z, length, forward=s > 0)
            if s > 0:
                right.append((x, z, z + length))
            z += length + rng.uniform(0.6, 3.0)
    return right


def _add_traffic(rng, qb, st: _Street, mv: _Movers, cam_pos, speed, half_fov: float) -> None:
    n = len(cam_pos)
    v_cam, z_cam = float(speed.mean()), cam_pos[0, 2]
    for k in range(st.lanes):
        x = (k + 0.5) * st.lane_w
        if k == st.cam_lane:
            if rng.random() < 0.65:  # lead car, never closer than 6 m
                v = max(v_cam * rng.uniform(0.8, 1.25), 0.0)
                z = z_cam + rng.uniform(8, 25) + max(0.0, (v_cam - v) * n)
                for _ in range(1 + int(rng.random() < 0.5)):
                    length = rng.uniform(3.9, 4.9)
                    _add_car(rng, qb, x, z, length, True, mv.add(vz=v))
                    z += length + rng.uniform(5, 30)
            continue
        v = v_cam + rng.uniform(0.3, 0.9)
        if rng.random() < 0.6:  # overtakes the camera: enters at the frame edge mid-snippet
            k_app = rng.uniform(n / 4, 3 * n / 4)
            front = cam_pos[int(k_app), 2] + abs(x - cam_pos[0, 0]) / np.tan(half_fov) - v * k_app
            length = rng.uniform(3.9, 4.9)
            _add_car(rng, qb, x, front - length, length, True, mv.add(vz=v))
        z = z_cam + rng.uniform(10, 40)
        for _ in range(rng.integers(0, 3)):
            _add_car(rng, qb, x, z, 4.5, True, mv.add(vz=v))
            z += rng.uniform(12, 40)
    for k in range(st.lanes):
        x, v = -(k + 0.5) * st.lane_w, -rng.uniform(0.5, 1.4)
        z = z_cam + rng.uniform(15, 60)
        for _ in range(rng.integers(1, 4)):
            _add_car(rng, qb, x, z, rng.uniform(3.9, 4.9), False, mv.add(vz=v))
            z += rng.uniform(12, 60)


def _add_pedestrians(rng, qb, st: _Street, mv: _Movers, cam_pos, parked_right: list) -> None:
    n = len(cam_pos)
    z_cam, z_end = cam_pos[0, 2], cam_pos[-1, 2]
    for si, s in enumerate((-1, 1)):
        inner = st.road[si] + st.grass[si]
        for _ in range(rng.integers(2, 8)):
            vz = 0.0 if rng.random() < 0.2 else rng.choice([-1, 1]) * rng.uniform(0.04, 0.09)
            x = s * (inner + rng.uniform(0.5, st.walk[si] - 0.5))
            z, h = z_cam + rng.uniform(4, 100), rng.uniform(1.55, 1.9)
            _add_person(rng, qb, x, z, h, abs(vz), mv.add(vz=vz), gait=(0.1, 0.04))
    if np.isfinite(st.cross_z) or rng.random() < 0.35:
        zc = st.cross_z if np.isfinite(st.cross_z) else z_end + rng.uniform(6, 40)
        for _ in range(rng.integers(1, 4)):
            si = int(rng.integers(2))
            s = 2 * si - 1
            vx = -s * rng.uniform(0.05, 0.09)
            x = s * (st.road[si] + rng.uniform(-0.2, 0.8)) - vx * rng.uniform(-0.8 * n, 0.6 * n)
            z, h = zc + rng.uniform(0.5, 3.5), rng.uniform(1.55, 1.9)
            _add_person(rng, qb, x, z, h, abs(vx), mv.add(vx=vx), gait=(0.35, 0.0))
    hidden = [c for c in parked_right if z_end + 4 < c[1] < z_cam + 45]
    if hidden and rng.random() < 0.6:  # a child steps out from behind a parked car
        x, _, z1 = hidden[int(rng.integers(len(hidden)))]
        vx = -rng.uniform(0.04, 0.07)
        x0 = x - 0.9 - vx * rng.uniform(n / 3, 3 * n / 4)
        h = rng.uniform(1.1, 1.3)
        _add_person(rng, qb, x0, z1 + 0.5, h, -vx, mv.add(vx=vx), gait=(0.35, 0.0))


def _build_world(rng: np.random.Generator, height: int, width: int, n: int) -> _World:
    st = _make_street(rng)
    cam_pos, cam_rot, speed = _make_camera(rng, n, (st.cam_lane + 0.5) * st.lane_w)
    z_lo, z_end = cam_pos[0, 2] - 40, cam_pos[-1, 2]
    z_hi = z_end + 220
    qb = _QuadBuilder()
    if rng.random() < 0.4:  # the street ends in a cross facade
        z_hi = z_end + rng.uniform(150, 300)
        qb.add(2, z_hi, -150, 150, 0, rng.uniform(15, 40), facing=-1, **_facade_style(rng))
    _add_buildings(rng, qb, st, z_lo, z_hi)
    _add_trees_and_poles(rng, qb, st, z_lo, z_hi)
    _add_signs(rng, qb, st, z_lo, z_hi)
    if rng.random() < 0.35:
        st.cross_z = z_end + rng.uniform(8, 40)
        _add_traffic_lights(rng, qb, st, st.cross_z - 1.5)
    parked = _add_parked_cars(rng, qb, st, z_lo, z_hi)
    mv = _Movers(n)
    _add_traffic(rng, qb, st, mv, cam_pos, speed, np.arctan(0.5 / FOCAL))
    _add_pedestrians(rng, qb, st, mv, cam_pos, parked)
    overcast = rng.random() < 0.25
    horizon = rng.uniform([175, 185, 195], [215, 220, 230])
    zenith = horizon * 0.9 if overcast else rng.uniform([60, 100, 160], [120, 160, 215])
    return _World(
        height=height,
        width=width,
        f=FOCAL * width,
        cam_pos=cam_pos,
        cam_rot=cam_rot,
        quads=qb.finish(),
        obj_off=mv.offsets(),
        street=st,
        horizon=horizon.astype(F32),
        zenith=zenith.astype(F32),
        cloud_cover=rng.uniform(0.2, 0.6) - 0.3 * overcast,
        sky_seed=int(rng.integers(1 << 30)),
        haze=rng.uniform(250, 600),
    )


def _clip_near(pc: np.ndarray) -> np.ndarray:
    # Clip a camera-space polygon (k, 3) to z >= NEAR (Sutherland-Hodgman, one plane).
    out = []
    for a, b in zip(pc, np.roll(pc, -1, 0)):
        if a[2] >= NEAR:
            out.append(a)
        if (a[2] >= NEAR) != (b[2] >= NEAR):
            out.append(a + (NEAR - a[2]) / (b[2] - a[2]) * (b - a))
    return np.array(out)


def _screen_boxes(w: _World, off: np.ndarray, o: np.ndarray, R: np.ndarray):
    """Indices of the quads that may be visible and their inclusive pixel boxes."""
    q = w.quads
    n = len(q.axis)
    pc = (q.corners + off[:, None, :] - o) @ R  # world -> camera, (N, 4, 3)
    z = pc[..., 2]
    cw = q.c + off[np.arange(n), q.axis]
    vis = (q.facing == 0) | (q.facing * (o[q.axis] - cw) > 0)
    vis &= (z.max(1) > NEAR) & (z.min(1) < q.max_dist)
    front = vis & (z.min(1) > NEAR)
    with np.errstate(all="ignore"):
        u = w.cx + w.f * pc[..., 0] / z
        v = w.cy - w.f * pc[..., 1] / z
    box = np.full((4, n), np.inf)
    box[:, front] = u[front].min(1), -u[front].max(1), v[front].min(1), -v[front].max(1)
    for k in np.nonzero(vis & ~front)[0]:
        p = _clip_near(pc[k])
        pu, pv = w.cx + w.f * p[:, 0] / p[:, 2], w.cy - w.f * p[:, 1] / p[:, 2]
        box[:, k] = pu.min(), -pu.max(), pv.min(), -pv.max()
    j0 = np.maximum(np.ceil(box[0]) - 1, 0)
    j1 = np.minimum(np.floor(-box[1]) + 1, w.width - 1)
    i0 = np.maximum(np.ceil(box[2]) - 1, 0)
    i1 = np.minimum(np.floor(-box[3]) + 1, w.height - 1)
    keep = np.nonzero(vis & (j0 <= j1) & (i0 <= i1))[0]
    return keep, *(b[keep].astype(np.int64) for b in (i0, i1, j0, j1))


def _coverage(q: _Quads, mask: int, k, un, vn, frame: int) -> np.ndarray:
    # Sprite silhouettes; k is one quad index or one per point.
    if mask == MASK_CANOPY:
        return tx.canopy_mask(un, vn, q.seed[k])
    if mask == MASK_PERSON:
        prm = q.prm[k]
        x = (un - 0.5) * (q.su[k] / q.sv[k])
        phase = prm[..., 0] + prm[..., 1] * frame
        return tx.person_regions(x, vn, phase, prm[..., 2], prm[..., 3]) > 0
    return tx.sign_mask(un, vn, q.kind[k])


def _raster_big(w, fr: _Frame, off, cw, frame, ks, i0, i1, j0, j1) -> None:
    q, o = w.quads, fr.o
    for k, i0_, i1_, j0_, j1_ in zip(
        ks.tolist(), i0.tolist(), i1.tolist(), j0.tolist(), j1.tolist()
    ):
        a = q.axis[k]
        a1, a2 = _U_AXIS[a], _V_AXIS[a]
        sl = (slice(i0_, i1_ + 1), slice(j0_, j1_ + 1))
        zb = fr.depth[sl]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (cw[k] - o[a]) / fr.D[a][sl]
        ok = (t > NEAR) & (t < zb)
        if not ok.any():
            continue
        p1 = (o[a1] - off[k, a1]) + t * fr.D[a1][sl]
        p2 = (o[a2] - off[k, a2]) + t * fr.D[a2][sl]
        ok &= (p1 >= q.lo1[k]) & (p1 <= q.hi1[k]) & (p2 >= q.lo2[k]) & (p2 <= q.hi2[k])
        if q.mask[k] != MASK_NONE:
            ii, jj = np.nonzero(ok)
            un = (p1[ii, jj] - q.lo1[k]) / q.su[k]
            vn = (p2[ii, jj] - q.lo2[k]) / q.sv[k]
            drop = ~_coverage(q, q.mask[k], k, un, vn, frame)
            ok[ii[drop], jj[drop]] = False
        zb[ok] = t[ok]
        fr.sid[sl][ok] = k + 2


def _raster_small(w, fr: _Frame, off, cw, frame, ks, i0, i1, j0, j1) -> None:
    # All small quads at once: pad their boxes to a common size, intersect every (quad, pixel)
    # pair, then keep the nearest fragment per pixel.
    if not len(ks):
        return
    q, o, hgt, wid = w.quads, fr.o, w.height, w.width
    ii = i0[:, None, None] + np.arange(int((i1 - i0).max()) + 1)[None, :, None]
    jj = j0[:, None, None] + np.arange(int((j1 - j0).max()) + 1)[None, None, :]
    inside = (ii <= i1[:, None, None]) & (jj <= j1[:, None, None])
    pix = np.minimum(ii, hgt - 1) * wid + np.minimum(jj, wid - 1)
    a = q.axis[ks]
    a1, a2 = _U_AXIS[a], _V_AXIS[a]
    d = fr.D.reshape(3, -1)
    depth, sid = fr.depth.reshape(-1), fr.sid.reshape(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (cw[ks] - o[a])[:, None, None] / d[a[:, None, None], pix]
    ok = inside & (t > NEAR) & (t < depth[pix])
    p1 = (o[a1] - off[ks, a1])[:, None, None] + t * d[a1[:, None, None], pix]
    p2 = (o[a2] - off[ks, a2])[:, None, None] + t * d[a2[:, None, None], pix]
    c = (slice(None), None, None)
    ok &= (p1 >= q.lo1[ks][c]) & (p1 <= q.hi1[ks][c]) & (p2 >= q.lo2[ks][c]) & (p2 <= q.hi2[ks][c])
    kk = np.broadcast_to(ks[c], ok.shape)
    for m in (MASK_CANOPY, MASK_PERSON, MASK_SIGN):
        sel = ok & (q.mask[kk] == m)
        if sel.any():
            k = kk[sel]
            ok[sel] = _coverage(
                q, m, k, (p1[sel] - q.lo1[k]) / q.su[k], (p2[sel] - q.lo2[k]) / q.sv[k], frame
            )
    fp, ft, fk = pix[ok], t[ok], kk[ok]
    order = np.lexsort((ft, fp))
    fp, ft, fk = fp[order], ft[order], fk[order]
    first = np.ones(len(fp), bool)
    first[1:] = fp[1:] != fp[:-1]
    fp, ft, fk = fp[first], ft[first], fk[first]
    win = ft < depth[fp]
    depth[fp[win]] = ft[win]
    sid[fp[win]] = fk[win] + 2


def _raster(w: _World, frame: int) -> _Frame:
    """Depth buffer and visible surface id per pixel for one frame."""
    o, R = w.cam_pos[frame], w.cam_rot[frame]
    xn = ((np.arange(w.width) - w.cx) / w.f)[None, :]
    yn = ((w.cy - np.arange(w.height)) / w.f)[:, None]
    D = np.stack([R[i, 0] * xn + R[i, 1] * yn + R[i, 2] for i in range(3)]).astype(F32)
    fr = _Frame(
        o=o,
        R=R,
        D=D,
        depth=np.full((w.height, w.width), np.inf, F32),
        sid=np.zeros((w.height, w.width), np.int32),
    )
    ground = D[1] < 0
    fr.depth[ground] = -o[1] / D[1][ground]
    fr.sid[ground] = SID_GROUND
    q = w.quads
    off = w.obj_off[frame][q.obj]
    cw = q.c + off[np.arange(len(q.axis)), q.axis]
    ks, i0, i1, j0, j1 = _screen_boxes(w, off, o, R)
    side = np.maximum(i1 - i0, j1 - j0) + 1
    big = side > BATCH_SIDES[-1]
    _raster_big(w, fr, off, cw, frame, ks[big], i0[big], i1[big], j0[big], j1[big])
    lo = 0
    for hi in BATCH_SIDES:
        b = (side > lo) & (side <= hi)
        _raster_small(w, fr, off, cw, frame, ks[b], i0[b], i1[b], j0[b], j1[b])
        lo = hi
    return fr


def _shade_sky(w: _World, d: np.ndarray) -> np.ndarray:
    # Texture depends on the (unit) view direction only: the sky is at infinity.
    elev, az = d[1], np.arctan2(d[0], d[2])
    col = w.horizon + (w.zenith - w.horizon) * (np.clip(elev / 0.4, 0, 1) ** 0.7)[:, None]
    n = tx.fbm(
        az,
        elev * 2.5,
        w.sky_seed,
        (0.05, 0.12, 0.3),
        (0.25, 0.5, 1.0),
        np.full(len(elev), 1.5 / w.f, F32),
    )
    cloud = np.clip((n + 0.5 - w.cloud_cover) * 3, 0, 1)
    return col + (np.array([235, 235, 240], F32) * (0.9 + 0.2 * n)[:, None] - col) * cloud[:, None]


def _shade_ground(st: _Street, x, z, fpx, fpz) -> tuple[np.ndarray, np.ndarray]:
    si = (x >= 0).astype(np.int64)
    ax = np.abs(x)
    road = st.road[si]
    walk0 = road + st.grass[si]
    is_road = ax < road
    is_walk = (ax >= walk0) & ((ax < walk0 + st.walk[si]) | ~st.outer_terrain[si])
    lab = np.select([is_road, is_walk], [ROAD, SIDEWALK], TERRAIN).astype(np.uint8)
    fp = np.maximum(fpx, fpz)
    rgb = np.empty((len(x), 3), F32)

    r = is_road
    xr, zr, fxr, fzr = x[r], z[r], fpx[r], fpz[r]
    base = (
        st.asphalt
        * (1 + tx.fbm(xr, zr, st.seed, (0.08, 0.25, 1.0, 5.0), (0.6, 0.45, 0.25, 0.2), fp[r]))[
            :, None
        ]
    )
    lw, nl = st.lane_w, st.lanes
    lines = [(0.0, 0.075, (9.0, 3.0))] if nl == 1 else [(-0.15, 0.06, None), (0.15, 0.06, None)]
    for k in range(1, nl):
        lines += [(k * lw, 0.075, (9.0, 3.0)), (-k * lw, 0.075, (9.0, 3.0))]
    lines += [(nl * lw - 0.1, 0.075, None), (-nl * lw + 0.1, 0.075, None)]
    paint = np.zeros(len(xr), F32)
    for xc, hw, dash in lines:
        cov = tx.box_cover(xr, fxr, xc - hw, 2 * hw)
        if dash is not None:
            cov *= tx.box_cover(zr, fzr, 0.0, dash[1], dash[0])
        paint = np.maximum(paint, cov)
    if np.isfinite(st.cross_z):
        zebra = tx.box_cover(xr, fxr, 0.0, 0.5, 1.0) * tx.box_cover(zr, fzr, st.cross_z, 4.0)
        paint = np.maximum(paint, zebra * (np.abs(xr) < nl * lw))
    rgb[r] = base + (np.array([222, 222, 215], F32) - base) * (0.9 * paint)[:, None]

    p = is_walk
    xp, zp, fp_ = x[p], z[p], fp[p]
    tex = 1 + tx.fbm(xp, zp, st.seed + 1, (0.05, 0.25, 1.5), (0.12, 0.1, 0.1), fp_)
    g = tx.hash01(xp / st.tile, zp / st.tile, st.seed + 2) - 0.5
    tex *= 1 + 0.15 * g * np.clip(st.tile / (2 * fp_) - 0.5, 0, 1)
    joint = np.maximum(
        tx.box_cover(xp, fpx[p], 0.0, 0.02, st.tile), tx.box_cover(zp, fpz[p], 0.0, 0.02, st.tile)
    )
    tex *= 1 - 0.35 * joint
    tex *= np.where(ax[p] - road[p] < 0.25, 1.15, 1.0)  # curb stones
    rgb[p] = st.walk_col * tex[:, None]

    g_ = ~is_road & ~is_walk
    xg, zg = x[g_], z[g_]
    n = tx.fbm(xg, zg, st.seed + 3, (0.04, 0.15, 0.6, 3.0), (0.5, 0.35, 0.25, 0.2), fp[g_])
    dry = tx.value_noise(xg / 4, zg / 4, st.seed + 4)[:, None]
    grass = np.array([70, 95, 40], F32) + (np.array([115, 100, 65], F32) - (70, 95, 40)) * dry
    rgb[g_] = grass * (1 + n)[:, None]
    return rgb, lab


def _shade(w: _World, fr: _Frame, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB image and label map of a rastered frame."""
    q = w.quads
    sid, depth, D = fr.sid.reshape(-1), fr.depth.reshape(-1), fr.D.reshape(3, -1)
    dn = np.sqrt(D[0] * D[0] + D[1] * D[1] + D[2] * D[2])
    px = depth * dn / F32(w.f)  # metres per pixel across the ray (inf for sky)
    rgb = np.empty((len(sid), 3), F32)
    lab = np.empty(len(sid), np.uint8)

    sky = sid == SID_SKY
    rgb[sky] = _shade_sky(w, D[:, sky] / dn[sky])
    lab[sky] = SKY

    idx = np.nonzero(sid == SID_GROUND)[0]
    s, t = px[idx], depth[idx]
    x = F32(fr.o[0]) + t * D[0, idx]
    z = F32(fr.o[2]) + t * D[2, idx]
    rgb[idx], lab[idx] = _shade_ground(w.street, x, z, s, s * dn[idx] / np.abs(D[1, idx]))

    idx = np.nonzero(sid >= 2)[0]
    k = sid[idx] - 2
    a = q.axis[k]
    ua, va = _U_AXIS[a], _V_AXIS[a]
    # Quad-local (u, v) = camera position in the object's frame - quad corner + depth * ray.
    rel0 = (fr.o - w.obj_off[frame][q.obj]).astype(F32)
    cu = rel0[np.arange(len(q.axis)), _U_AXIS[q.axis]] - q.lo1.astype(F32)
    cv = rel0[np.arange(len(q.axis)), _V_AXIS[q.axis]] - q.lo2.astype(F32)
    t = depth[idx]
    u = cu[k] + t * D[ua, idx]
    v = cv[k] + t * D[va, idx]
    s = px[idx]
    # The axis along which a quad is seen obliquely gets the larger footprint.
    slant = s * dn[idx] / np.maximum(np.abs(D[a, idx]), F32(0.02) * dn[idx])
    fpu, fpv = np.where(a == 1, s, slant), np.where(a == 1, slant, s)
    mat = q.material[k]
    for m in np.unique(mat):
        sel = np.nonzero(mat == m)[0]
        ks = k[sel]
        hits = tx.Hits(
            u=u[sel],
            v=v[sel],
            su=q.su[ks],
            sv=q.sv[ks],
            fpu=fpu[sel],
            fpv=fpv[sel],
            col=q.col[ks],
            prm=q.prm[ks],
            seed=q.seed[ks],
            kind=q.kind[ks],
            frame=frame,
        )
        rgb[idx[sel]] = _SHADERS[m](hits) * q.light[ks][:, None]
    lab[idx] = q.label[k]

    fog = np.where(sky, F32(0), 1 - np.exp(-depth / F32(w.haze)))
    rgb += (w.horizon - rgb) * fog[:, None]
    img = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    return img.reshape(w.height, w.width, 3), lab.reshape(w.height, w.width)


def _flow(w: _World, a: _Frame, b: _Frame, fa: int, fb: int) -> tuple[np.ndarray, np.ndarray]:
    """Flow at the pixels of frame `fa` (buffers a) to where their surface points are in frame
    `fb` (buffers b), and whether the point is visible there. fb = fa + 1 gives forward flow,
    fb = fa - 1 backward flow (where each pixel of frame fa came from in frame fb)."""
    q, hgt, wid = w.quads, w.height, w.width
    sid = a.sid
    sky = sid == SID_SKY
    # Per surface id: where the point is relative to b's camera, less depth * ray.
    tab = np.empty((len(q.obj) + 2, 3))
    tab[SID_SKY] = 0  # points at infinity move with the rotation only
    tab[SID_GROUND] = a.o - b.o
    tab[2:] = (a.o - b.o) + (w.obj_off[fb] - w.obj_off[fa])[q.obj]
    depth = np.where(sky, 1, a.depth)  # sky: rel = ray direction
    rel = [depth * a.D[i] + tab[:, i][sid] for i in range(3)]
    pc = [b.R[0, i] * rel[0] + b.R[1, i] * rel[1] + b.R[2, i] * rel[2] for i in range(3)]
    z = pc[2]
    ok = z > NEAR
    zs = np.where(ok, z, 1)  # keeps the (invalid) flow of points behind the camera finite
    u = w.cx + w.f * pc[0] / zs
    v = w.cy - w.f * pc[1] / zs
    flow = np.stack([u - np.arange(wid)[None, :], v - np.arange(hgt)[:, None]]).astype(F32)
    ok &= (u >= -0.5) & (u < wid - 0.5) & (v >= -0.5) & (v < hgt - 0.5)
    ri = np.clip(np.rint(v), 0, hgt - 1).astype(np.int64)
    rj = np.clip(np.rint(u), 0, wid - 1).astype(np.int64)
    # A planar surface cannot hide its own points, so the point is visible in frame fb exactly
    # when the pixel it lands on shows the same surface.
    return flow, ok & (b.sid.reshape(-1)[ri * wid + rj] == sid)


def render_snippet(
    seed: int, height: int = 128, width: int = 256, num_frames: int = 30
) -> RenderedSnippet:
    """Render a procedural street-scene snippet with labels and ground-truth forward and
    backward flow. Deterministic in (seed, height, width, num_frames)."""
    if height < 8 or width < 8 or num_frames < 1:
        raise ValueError(
            f"need height, width >= 8 and num_frames >= 1, got {height}x{width}x{num_frames}"
        )
    w = _build_world(np.random.default_rng(seed), height, width, num_frames)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    labels = np.empty((num_frames, height, width), np.uint8)
    flow = np.empty((num_frames - 1, 2, height, width), F32)
    valid = np.empty((num_frames - 1, height, width), bool)
    bflow, bvalid = np.empty_like(flow), np.empty_like(valid)
    prev = None
    for t in range(num_frames):
        cur = _raster(w, t)
        frames[t], labels[t] = _shade(w, cur, t)
        if prev is not None:
            flow[t - 1], valid[t - 1] = _flow(w, prev, cur, t - 1, t)
            bflow[t - 1], bvalid[t - 1] = _flow(w, cur, prev, t, t - 1)
        prev = cur
    return RenderedSnippet(
        frames=frames,
        labels=labels,
        flow=flow,
        flow_valid=valid,
        backward_flow=bflow,
        backward_valid=bvalid,
    )
