"""Drawing of one synthetic person (and bicycle) in one pose with Pillow primitives.

Geometry is written in *body units*: x relative to the body centre line, y down from the top of the
head, both in multiples of the person height ``u``. :class:`Pose` maps body units to pixels
(``px = cx + kx*u*x``, ``py = y0 + u*y``); ``kx < 1`` squeezes cyclists horizontally the way MARS crops of
wide boxes are squeezed to 128 px. ``facing`` is -1 (left), +1 (right) or 0 (towards the camera).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import ImageDraw

from .attributes import BIKE_COLORS, COLORS, HAIR_COLORS, PersonAttrs

_WHITE = (235, 235, 230)


@dataclass(frozen=True)
class Pose:
    """Placement and articulation of a person in one frame."""

    cx: float  # pixel x of the body centre line
    y0: float  # pixel y of the top of the head
    u: float  # person height in pixels
    kx: float  # horizontal squeeze (1 = none)
    facing: int  # -1 left, +1 right, 0 camera
    phase: float  # gait phase (walking) or crank angle (cycling), radians
    action: str  # "walking_left" | "walking_right" | "standing" | "cycling"

    def px(self, x: float, y: float) -> tuple[float, float]:
        """Body units -> pixel coordinates."""
        return (self.cx + self.kx * self.u * x, self.y0 + self.u * y)

    def w(self, width: float) -> int:
        """Line width in pixels for a limb of ``width`` body units."""
        return max(1, int(round(width * self.u * self.kx)))


def _shade(rgb, k: float) -> tuple[int, int, int]:
    return tuple(int(max(0, min(255, c * k))) for c in rgb)


def _ellipse(draw, pose: Pose, x: float, y: float, rx: float, ry: float, fill, outline=None, width=1):
    (x0, y0), (x1, y1) = pose.px(x - rx, y - ry), pose.px(x + rx, y + ry)
    draw.ellipse([x0, y0, x1, y1], fill=fill, outline=outline, width=width)


def _poly(draw, pose: Pose, pts, fill):
    draw.polygon([pose.px(x, y) for x, y in pts], fill=fill)


def _line(draw, pose: Pose, pts, fill, width: float):
    draw.line([pose.px(x, y) for x, y in pts], fill=fill, width=pose.w(width), joint="curve")


def _knee(hip, foot, l1: float, l2: float, bend: int):
    """Two-link inverse kinematics: knee (or elbow) position, bent towards ``bend`` (+-1 in x)."""
    dx, dy = foot[0] - hip[0], foot[1] - hip[1]
    d = min(math.hypot(dx, dy), l1 + l2 - 1e-6)
    d = max(d, 1e-6)
    a = (l1 * l1 - l2 * l2 + d * d) / (2 * d)
    h = math.sqrt(max(0.0, l1 * l1 - a * a))
    ux, uy = dx / d, dy / d
    px, py = hip[0] + a * ux, hip[1] + a * uy
    # The two perpendiculars are (-uy, ux) and (uy, -ux); pick the one pointing to `bend`.
    sx, sy = (-uy, ux) if (-uy) * bend >= 0 else (uy, -ux)
    return (px + h * sx, py + h * sy)


@dataclass(frozen=True)
class _Body:
    sw: float  # shoulder half width
    ww: float  # waist half width
    hw: float  # hip half width
    lean: float  # forward shift of the shoulders/head (cycling)
    drop: float  # downward shift of the shoulders/head (cycling)


def _body(person: PersonAttrs, pose: Pose) -> _Body:
    male = person.gender == "male"
    b = person.build
    cyc = pose.action == "cycling"
    return _Body(sw=(0.125 if male else 0.105) * b, ww=(0.105 if male else 0.085) * b,
                 hw=(0.10 if male else 0.112) * b, lean=0.08 * pose.facing if cyc else 0.0, drop=0.03 if cyc else 0.0)


def _joints(person: PersonAttrs, pose: Pose, body: _Body) -> dict:
    """Limb joints in body units: feet, knees, hands, elbows for both sides (a = -x side, b = +x side)."""
    f = pose.facing
    sh_y = 0.19 + body.drop
    sho = {"a": (-body.sw + 0.015 + body.lean, sh_y), "b": (body.sw - 0.015 + body.lean, sh_y)}
    hip = {"a": (-0.05, 0.50), "b": (0.05, 0.50)}
    j = {"hip": hip, "shoulder": sho}
    if pose.action == "cycling":
        crank = (0.10 * f, 0.86)
        r = 0.085
        feet = {"a": (crank[0] + r * math.cos(pose.phase), crank[1] + r * math.sin(pose.phase)),
                "b": (crank[0] - r * math.cos(pose.phase), crank[1] - r * math.sin(pose.phase))}
        hip = {"a": (-0.02, 0.50), "b": (0.02, 0.50)}
        knees = {s: _knee(hip[s], feet[s], 0.25, 0.25, f) for s in "ab"}
        bar = (0.36 * f, 0.50)
        hands = {"a": bar, "b": (bar[0] + 0.01, bar[1] + 0.01)}
        elbows = {s: _knee(sho[s], hands[s], 0.16, 0.16, -f or 1) for s in "ab"}
        j.update(hip=hip, feet=feet, knees=knees, hands=hands, elbows=elbows, crank=crank)
        return j
    swing = math.sin(pose.phase) if pose.action != "standing" else 0.0
    lift = {"a": max(0.0, math.cos(pose.phase)), "b": max(0.0, -math.cos(pose.phase))}
    if pose.action == "standing":
        lift = {"a": 0.0, "b": 0.0}
    dx = {"a": 0.13 * swing * (f or 1), "b": -0.13 * swing * (f or 1)}
    feet, knees, hands, elbows = {}, {}, {}, {}
    for s in "ab":
        side = -1 if s == "a" else 1
        feet[s] = (hip[s][0] + dx[s] + 0.01 * side, 0.96 - 0.03 * lift[s])
        knees[s] = ((hip[s][0] + feet[s][0]) / 2 + 0.035 * lift[s] * f, 0.73 - 0.02 * lift[s])
        hand_x = sho[s][0] + side * 0.025 - 0.7 * dx[s]
        # Arms swing opposite to the legs but never cross in front of the (frontal) torso.
        hand_x = min(hand_x, sho[s][0] + 0.01) if side < 0 else max(hand_x, sho[s][0] - 0.01)
        hands[s] = (hand_x, 0.48)
        elbows[s] = ((sho[s][0] + hands[s][0]) / 2 + side * 0.01, 0.34)
    j.update(feet=feet, knees=knees, hands=hands, elbows=elbows)
    return j


def _draw_bicycle(draw, pose: Pose, person: PersonAttrs, j: dict, wheel_angle: float):
    f = pose.facing
    color = COLORS[BIKE_COLORS[person.pid % len(BIKE_COLORS)]]
    tyre = (30, 30, 30)
    crank = j["crank"]
    rear, front = (crank[0] - 0.30 * f, 0.86), (crank[0] + 0.34 * f, 0.86)
    r = 0.17
    for hub in (rear, front):
        _ellipse(draw, pose, hub[0], hub[1], r, r, None, outline=tyre, width=max(2, pose.w(0.018)))
        for k in range(3):  # rotating spokes
            a = wheel_angle + k * math.pi / 3
            _line(draw, pose, [(hub[0] + r * math.cos(a), hub[1] + r * math.sin(a)),
                               (hub[0] - r * math.cos(a), hub[1] - r * math.sin(a))], (150, 150, 150), 0.006)
    seat = (-0.01 * f, 0.53)
    head = (front[0] - 0.05 * f, 0.55)
    w = 0.02
    for a, b in ((rear, crank), (rear, seat), (seat, crank), (seat, head), (crank, head), (head, front)):
        _line(draw, pose, [a, b], color, w)
    _line(draw, pose, [(seat[0] - 0.04, 0.515), (seat[0] + 0.04, 0.515)], (20, 20, 20), 0.025)  # saddle
    _line(draw, pose, [head, j["hands"]["a"]], (40, 40, 40), 0.015)  # stem + handlebar
    for s in "ab":  # crank arms to the pedals
        _line(draw, pose, [crank, j["feet"][s]], (60, 60, 60), 0.012)


def _draw_leg(draw, pose: Pose, person: PersonAttrs, j: dict, s: str):
    hip, knee, foot = j["hip"][s], j["knees"][s], j["feet"][s]
    skin, low = person.skin, person.lower_rgb
    lt = person.lower_type
    width = 0.075
    _line(draw, pose, [hip, knee, foot], skin if lt in ("shorts", "skirt") else low, width)
    if lt == "shorts":
        mid = (hip[0] + 0.75 * (knee[0] - hip[0]), hip[1] + 0.75 * (knee[1] - hip[1]))
        _line(draw, pose, [hip, mid], low, width + 0.01)
    if lt == "jeans":  # lighter outer seam
        side = -1 if s == "a" else 1
        off = side * 0.022
        _line(draw, pose, [(hip[0] + off, hip[1] + 0.02), (knee[0] + off, knee[1]), (foot[0] + off, foot[1] - 0.02)],
              _shade(low, 1.35), 0.008)
    toe = pose.facing * 0.035
    _ellipse(draw, pose, foot[0] + toe, foot[1] + 0.02, 0.045, 0.02, COLORS[person.shoe_color])


def _draw_lower_body(draw, pose: Pose, person: PersonAttrs, body: _Body):
    low = person.lower_rgb
    if person.lower_type == "skirt":
        flare = 0.055 if pose.action != "cycling" else 0.09
        _poly(draw, pose, [(-body.ww, 0.40), (body.ww, 0.40), (body.hw + flare, 0.68), (-body.hw - flare, 0.68)], low)
    else:
        _poly(draw, pose, [(-body.ww, 0.40), (body.ww, 0.40), (body.hw, 0.52), (0.0, 0.58), (-body.hw, 0.52)], low)


def _torso_shape(person: PersonAttrs, body: _Body) -> tuple[list, float]:
    """Upper-garment outline (body units) and its hem y."""
    ut = person.upper_type
    hem = {"coat": 0.72, "jacket": 0.53}.get(ut, 0.51)
    hem_w = body.hw + (0.035 if ut == "coat" else 0.0)
    sh = 0.17 + body.drop
    L, D = body.lean, body.drop
    pts = [(-body.sw + L, sh), (body.sw + L, sh), (body.ww + L * 0.5, 0.38 + D * 0.5), (hem_w, hem), (-hem_w, hem),
           (-body.ww + L * 0.5, 0.38 + D * 0.5)]
    return pts, hem


def _draw_torso(draw, pose: Pose, person: PersonAttrs, body: _Body):
    up, ut = person.upper_rgb, person.upper_type
    dark = _shade(up, 0.62)
    pts, hem = _torso_shape(person, body)
    _poly(draw, pose, pts, up)
    L, D = body.lean, body.drop
    neck_y = 0.17 + D
    if ut in ("jacket", "coat"):
        inner = COLORS[person.inner_color]
        if ut == "jacket":  # open front: inner shirt strip, zip edges, lapels
            _poly(draw, pose, [(L - 0.03, neck_y), (L + 0.03, neck_y), (0.028, hem), (-0.028, hem)], inner)
            _line(draw, pose, [(L - 0.03, neck_y), (-0.028, hem)], dark, 0.008)
            _line(draw, pose, [(L + 0.03, neck_y), (0.028, hem)], dark, 0.008)
        else:  # coat: closed, two button rows, wide collar
            _line(draw, pose, [(L * 0.9, neck_y + 0.02), (0.0, hem)], dark, 0.006)
            for k in range(4):
                y = neck_y + 0.07 + k * 0.09
                for bx in (-0.03, 0.03):
                    _ellipse(draw, pose, bx + L * (1 - (y - neck_y) / (hem - neck_y)), y, 0.008, 0.006, dark)
        for side in (-1, 1):  # lapels / collar
            lapel = [(L + side * 0.03, neck_y), (L + side * 0.085, neck_y), (L + side * 0.035, neck_y + 0.09)]
            _poly(draw, pose, lapel, dark)
    elif ut == "shirt":
        for side in (-1, 1):
            collar = [(L, neck_y + 0.03), (L + side * 0.055, neck_y - 0.005), (L + side * 0.04, neck_y + 0.045)]
            _poly(draw, pose, collar, _shade(up, 1.25))
        _line(draw, pose, [(L, neck_y + 0.03), (0.0, hem)], dark, 0.005)
    elif ut == "hoodie":
        _poly(draw, pose, [(-0.07, hem - 0.11), (0.07, hem - 0.11), (0.085, hem - 0.02), (-0.085, hem - 0.02)], dark)
        for side in (-1, 1):
            string = [(L + side * 0.02, neck_y + 0.01), (L * 0.7 + side * 0.022, neck_y + 0.09)]
            _line(draw, pose, string, _WHITE, 0.006)
    elif ut == "sweater":
        _poly(draw, pose, [pts[4], pts[3], (pts[3][0], hem - 0.035), (pts[4][0], hem - 0.035)], dark)
    # Neckline (round for t-shirt/sweater/hoodie).
    if ut in ("t-shirt", "sweater", "hoodie"):
        _ellipse(draw, pose, L, neck_y, 0.035, 0.018, person.skin)


def _draw_arm(draw, pose: Pose, person: PersonAttrs, j: dict, s: str):
    sho, elb, hand = j["shoulder"][s], j["elbows"][s], j["hands"][s]
    up = person.upper_rgb
    width = 0.052
    if person.upper_type == "t-shirt":
        _line(draw, pose, [sho, elb, hand], person.skin, width - 0.008)
        mid = (sho[0] + 0.7 * (elb[0] - sho[0]), sho[1] + 0.7 * (elb[1] - sho[1]))
        _line(draw, pose, [sho, mid], up, width + 0.004)
    else:
        _line(draw, pose, [sho, elb, hand], up, width)
        if person.upper_type == "sweater":
            cuff = (elb[0] + 0.85 * (hand[0] - elb[0]), elb[1] + 0.85 * (hand[1] - elb[1]))
            _line(draw, pose, [cuff, hand], _shade(up, 0.62), width)
    _ellipse(draw, pose, hand[0], hand[1] + 0.012, 0.022, 0.022, person.skin)


def _draw_head(draw, pose: Pose, person: PersonAttrs, body: _Body):
    f = pose.facing
    hx, hy = 0.012 * f + body.lean * 1.2, 0.07 + body.drop
    hair = HAIR_COLORS[person.hair_color]
    _line(draw, pose, [(hx - 0.003 * f, hy + 0.05), (body.lean, 0.18 + body.drop)], person.skin, 0.04)  # neck
    _ellipse(draw, pose, hx, hy, 0.055, 0.066, person.skin)
    eye = (35, 30, 30)
    if f == 0:
        for ex in (-0.02, 0.02):
            _ellipse(draw, pose, hx + ex, hy + 0.002, 0.006, 0.005, eye)
    else:
        _ellipse(draw, pose, hx + 0.028 * f, hy + 0.002, 0.006, 0.005, eye)
        _poly(draw, pose, [(hx + 0.05 * f, hy + 0.005), (hx + 0.066 * f, hy + 0.022), (hx + 0.048 * f, hy + 0.026)],
              _shade(person.skin, 0.9))
    # Hair cap on top (and at the back of the head when seen from the side).
    (x0, y0), (x1, y1) = pose.px(hx - 0.06, hy - 0.072), pose.px(hx + 0.06, hy + 0.05)
    draw.chord([x0, y0, x1, y1], 180, 360, fill=hair)
    if f:
        _ellipse(draw, pose, hx - 0.035 * f, hy - 0.005, 0.03, 0.045, hair)
    if person.hat == "hat":
        hat = COLORS[person.hat_color]
        (x0, y0), (x1, y1) = pose.px(hx - 0.062, hy - 0.085), pose.px(hx + 0.062, hy + 0.03)
        draw.chord([x0, y0, x1, y1], 180, 360, fill=hat)
        if f:
            _line(draw, pose, [(hx, hy - 0.03), (hx + 0.095 * f, hy - 0.025)], _shade(hat, 0.75), 0.016)
        else:
            _ellipse(draw, pose, hx, hy - 0.028, 0.075, 0.012, _shade(hat, 0.75))


def _draw_behind(draw, pose: Pose, person: PersonAttrs, body: _Body):
    """Parts behind the torso: long hair, hood, backpack body."""
    f = pose.facing
    hx, hy = 0.012 * f + body.lean * 1.2, 0.07 + body.drop
    if person.hair_length == "long":
        hair = HAIR_COLORS[person.hair_color]
        bx = hx - 0.02 * f
        mane = [(bx - 0.068, hy - 0.02), (bx + 0.068, hy - 0.02), (bx + 0.075, hy + 0.2), (bx - 0.075, hy + 0.2)]
        _poly(draw, pose, mane, hair)
    if person.upper_type == "hoodie":
        _ellipse(draw, pose, hx - 0.015 * f, hy + 0.03, 0.078, 0.085, _shade(person.upper_rgb, 0.85))
    if person.bag == "backpack":
        pack = COLORS[person.bag_color]
        if f:
            x_in, x_out = -f * (body.sw - 0.05) + body.lean, -f * (body.sw + 0.06) + body.lean
            _poly(draw, pose, [(x_in, 0.18 + body.drop), (x_out, 0.2 + body.drop), (x_out, 0.45), (x_in, 0.45)], pack)
        else:
            _poly(draw, pose, [(-0.1, 0.15), (0.1, 0.15), (0.11, 0.4), (-0.11, 0.4)], pack)


def _draw_bag_front(draw, pose: Pose, person: PersonAttrs, body: _Body):
    """Straps and shoulder bag, drawn over the torso and arms."""
    bag = COLORS[person.bag_color]
    sh = 0.18 + body.drop
    if person.bag == "backpack":
        for side in (-1, 1):  # shoulder straps, following the torso's lean
            top, bottom = (side * 0.86 * body.sw + body.lean, sh), (side * 0.8 * body.sw + 0.55 * body.lean, 0.37)
            _line(draw, pose, [top, bottom], _shade(bag, 0.8), 0.014)
    elif person.bag == "bag":
        _line(draw, pose, [(-body.sw * 0.75 + body.lean, sh), (body.hw + 0.02, 0.46)], _shade(bag, 0.8), 0.01)
        x = body.hw
        _poly(draw, pose, [(x - 0.01, 0.44), (x + 0.08, 0.44), (x + 0.085, 0.56), (x - 0.005, 0.56)], bag)


def draw_person(img, person: PersonAttrs, pose: Pose, wheel_angle: float = 0.0) -> None:
    """Draw ``person`` (and a bicycle when cycling) onto ``img`` in place.

    Args:
        img: a ``PIL.Image`` in RGB mode.
        person: appearance attributes.
        pose: placement and articulation.
        wheel_angle: rotation of the bicycle wheels (radians), cycling only.
    """
    draw = ImageDraw.Draw(img)
    body = _body(person, pose)
    j = _joints(person, pose, body)
    # With a side view the far limbs are drawn first; "a" is the -x side.
    far, near = ("b", "a") if pose.facing > 0 else ("a", "b")
    _draw_behind(draw, pose, person, body)
    if pose.action == "cycling":
        _draw_leg(draw, pose, person, j, far)
        _draw_bicycle(draw, pose, person, j, wheel_angle)
        _draw_leg(draw, pose, person, j, near)
    else:
        _draw_leg(draw, pose, person, j, "a")
        _draw_leg(draw, pose, person, j, "b")
    _draw_lower_body(draw, pose, person, body)
    _draw_torso(draw, pose, person, body)
    _draw_head(draw, pose, person, body)
    for s in (far, near):
        _draw_arm(draw, pose, person, j, s)
    _draw_bag_front(draw, pose, person, body)


def upper_probe_box(person: PersonAttrs, pose: Pose) -> tuple[int, int, int, int]:
    """Pixel box ``(x0, y0, x1, y1)`` on the chest that shows the upper garment's own colour.

    It lies between the open-jacket strip and the backpack strap, below the collar, so its median colour is the
    garment's (thin bag straps may cross it).
    """
    body = _body(person, pose)
    y_top, y_bot = 0.25 + body.drop, 0.35 + body.drop
    x_mid = body.lean * 0.72  # torso centre line at chest height (the torso leans when cycling)
    (x0, y0), (x1, y1) = pose.px(x_mid - 0.62 * body.sw, y_top), pose.px(x_mid - 0.3 * body.sw, y_bot)
    return int(math.floor(x0)), int(math.floor(y0)), int(math.ceil(x1)), int(math.ceil(y1))
