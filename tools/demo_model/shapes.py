"""The demo model's training data: one shape in one colour on a plain
background of another colour, with a caption that says so. Rendered with
4x supersampling so edges are anti-aliased."""
import numpy as np

SHAPES = ["circle", "square", "triangle", "star"]
COLORS = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 215, 30),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
SIZE = 64


def _inside(shape, x, y, cx, cy, r):
    dx, dy = x - cx, y - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        s = r * 0.85
        return (np.abs(dx) <= s) & (np.abs(dy) <= s)
    if shape == "triangle":  # pointing up, base 2r, height 1.8r
        top, bottom = cy - 0.95 * r, cy + 0.85 * r
        frac = (y - top) / (bottom - top)
        return (y >= top) & (y <= bottom) & (np.abs(dx) <= frac * r)
    # five-pointed star: inside if radius below the star's boundary at that angle
    ang = np.arctan2(dx, -dy) % (2 * np.pi / 5)
    ang = np.abs(ang - np.pi / 5) / (np.pi / 5)  # 0 at an outer point's middle... 1 at points
    inner = 0.38 * r
    # boundary radius between inner (valleys) and outer (points), linear in angle
    # measured along the edge: use the polygon edge equation
    half = np.pi / 5
    a = (1 - ang) * half  # angle from the point direction, 0..half
    # edge from the point (r, 0) to the valley (inner, half) in polar coords
    p1 = np.stack([np.zeros_like(a) + r, np.zeros_like(a)])
    vx, vy = inner * np.cos(half), inner * np.sin(half)
    # distance along direction a where the ray hits the edge p1->v
    ex, ey = vx - r, vy
    c, s = np.cos(a), np.sin(a)
    t = (r * ey) / (c * ey - s * ex)
    return dx * dx + dy * dy <= t * t


def render(shape, fg, bg, cx, cy, r, size=SIZE, ss=4):
    n = size * ss
    ys, xs = np.mgrid[0:n, 0:n]
    x = (xs + 0.5) / ss
    y = (ys + 0.5) / ss
    m = _inside(shape, x, y, cx, cy, r).astype(np.float32)
    m = m.reshape(size, ss, size, ss).mean(axis=(1, 3))[..., None]
    img = m * np.array(COLORS[fg], np.float32) + (1 - m) * np.array(COLORS[bg], np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def caption(shape, fg, bg):
    return f"a {fg} {shape} on a {bg} background"


def sample(rng, size=SIZE):
    """Random (image uint8 HxWx3, caption)."""
    shape = SHAPES[rng.integers(len(SHAPES))]
    names = list(COLORS)
    fg = names[rng.integers(len(names))]
    bg = names[rng.integers(len(names))]
    while bg == fg:
        bg = names[rng.integers(len(names))]
    r = rng.uniform(0.2, 0.33) * size
    cx = rng.uniform(r + 2, size - r - 2)
    cy = rng.uniform(r + 2, size - r - 2)
    return render(shape, fg, bg, cx, cy, r, size), caption(shape, fg, bg)
