"""The pocket world: a SIMULATION. Procedurally drawn scenes and their captions, seeded and offline.

A scene is one kind of object, drawn `count` times (1-6) on a textured background: a shape (10), a
colour (10), a pattern (6), a size (small / large) and a background scene (8). Captions come from a
small grammar with several frames and word orders, and leave attributes out at random, so that the
text tower sees partial descriptions ("a photo of a red circle.", "two striped objects on a brick
wall.", "a photo of a snow field."). The downstream pocket datasets ask for one attribute at a time,
with class names that are phrases of this grammar ("circle", "striped object", "snow field",
"three objects").

Everything is a pure function of integers: `sample(seed, index)` gives the same pixels and caption on
every machine (Python's `random.Random` and numpy's `default_rng` seeded by the pair). Rendering is at
the model's input size (48 px) with 2x supersampled shape masks: about a millisecond an image.

`Shift` is the downstream distribution shift (palette jitter and desaturation, noise, blur, clutter
strokes, and a fixed colour cast or dusk for some datasets): the pocket datasets are drawn with it,
pretraining never sees it.

Over 400 lines on purpose: the vocabulary, the caption grammar, the scene sampler, the renderer, the
object masks and the pretraining curriculum all read the same attribute tables; split, each would import
the others' private constants.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from dra.drawing import draw_shape  # the pocket world keeps the default Geometry

GENERATOR_VERSION = "pocket-world-v1"
IMAGE_SIZE = 48
_SS = 2  # supersampling of the masks

SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond", "hexagon", "heart", "arrow", "crescent")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 170, 60),
    "blue": (35, 70, 220),
    "yellow": (240, 215, 30),
    "purple": (135, 45, 185),
    "orange": (250, 135, 25),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "pink": (245, 125, 195),
    "cyan": (30, 205, 215),
}
PATTERNS = ("plain", "striped", "dotted", "checkered", "outlined", "two-tone")
SIZES = ("small", "large")
SCENES = (
    "grass field",
    "sandy beach",
    "snow field",
    "blue sky",
    "brick wall",
    "wooden floor",
    "night sky",
    "ocean water",
)
COUNT_WORDS = ("one", "two", "three", "four", "five", "six")
MAX_COUNT = len(COUNT_WORDS)


@dataclass(frozen=True)
class Scene:
    shape: str
    colour: str
    pattern: str
    size: str
    count: int
    background: str


@dataclass(frozen=True)
class Shift:
    """The downstream shift; each field is a strength in [0, 1]-ish units (0 = pretraining's look)."""

    palette: float = 0.0  # colour jitter of objects and background, and desaturation
    noise: float = 0.0  # Gaussian pixel noise, sigma = 40 * noise
    blur: float = 0.0  # Gaussian blur radius in pixels
    clutter: int = 0  # up to this many random strokes over the scene
    dusk: float = 0.0  # darken by this fraction and tint blue (low light)
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)  # a fixed colour cast: per-channel RGB gains (lamp light)

    @property
    def is_identity(self) -> bool:
        return (
            self.palette == 0
            and self.noise == 0
            and self.blur == 0
            and self.clutter == 0
            and self.dusk == 0
            and self.tint == (1.0, 1.0, 1.0)
        )


DOWNSTREAM_SHIFT = Shift(palette=0.5, noise=0.35, blur=0.6, clutter=4)
STRONG_SHIFT = Shift(palette=1.5, noise=0.8, blur=1.0, clutter=8)
DUSK_SHIFT = Shift(palette=0.5, noise=0.35, blur=0.6, clutter=4, dusk=0.45)
COLD_LAMP_SHIFT = Shift(palette=0.5, noise=0.35, blur=0.6, clutter=4, tint=(0.6, 0.85, 1.0))  # a bluish cast


# -- attributes and captions ------------------------------------------------------------------------


def random_scene(rng: random.Random, **fixed) -> Scene:
    """A scene with uniformly drawn attributes, except those given in `fixed`."""
    values = {
        "shape": rng.choice(SHAPES),
        "colour": rng.choice(list(COLOURS)),
        "pattern": rng.choice(PATTERNS),
        "size": rng.choice(SIZES),
        "count": rng.randint(1, MAX_COUNT),
        "background": rng.choice(SCENES),
    }
    values.update(fixed)
    if values["count"] > 3 and "size" not in fixed:
        values["size"] = "small"  # four to six large objects do not fit in 48 px
    return Scene(**values)


FRAMES = (
    "a photo of a {}.",
    "a photo of {}.",
    "a picture of {}.",
    "an image of {}.",
    "{}.",
    "there is {}.",
    "a drawing of {}.",
    "a rendering of {}.",
)
_BACKGROUND_PREPS = ("on a {}", "in front of a {}", "against a {}", "over a {}")


def plural(noun: str) -> str:
    return noun + "es" if noun.endswith(("s", "x", "sh", "ch")) else noun + "s"


def caption(scene: Scene, rng: random.Random, keep: str | None = None) -> str:
    """One caption of `scene`: a frame around a noun phrase that keeps each attribute with some chance.

    `keep` names an attribute the caption must mention (shape, colour, pattern, count, background).
    """
    if keep in (None, "background") and rng.random() < 0.08:  # the background alone
        return rng.choice(FRAMES).format(scene.background)
    noun = scene.shape if keep == "shape" or rng.random() < 0.8 else rng.choice(("object", "shape", "thing"))
    adjectives = []
    if rng.random() < 0.5:
        adjectives.append(scene.size)
    if keep == "colour" or rng.random() < 0.75:
        adjectives.append(scene.colour)
    pattern_after = False
    if keep == "pattern" or rng.random() < 0.65:
        if scene.pattern == "plain" or rng.random() < 0.7:
            adjectives.append(scene.pattern)
        else:
            pattern_after = True
    if rng.random() < 0.2:
        rng.shuffle(adjectives)
    many = scene.count > 1
    head = plural(noun) if many else noun
    say_count = many or keep == "count" or rng.random() < 0.3
    if say_count:
        if scene.count == 2 and rng.random() < 0.3:
            quantity = "a pair of"
        else:
            quantity = COUNT_WORDS[scene.count - 1]
    else:
        quantity = ""
    phrase = " ".join(w for w in (quantity, *adjectives, head) if w)
    if pattern_after:
        phrase += {
            "striped": " with stripes",
            "dotted": " with dots",
            "checkered": " with a checkered pattern",
            "outlined": " drawn in outline",
            "two-tone": " in two tones",
        }[scene.pattern]
    if keep == "background" or rng.random() < 0.6:
        phrase += " " + rng.choice(_BACKGROUND_PREPS).format(scene.background)
    return rng.choice(FRAMES).format(phrase)


# -- drawing -------------------------------------------------------------------------------------------


def _layout(scene: Scene, rng: random.Random) -> list[tuple[float, float, float]]:
    """(cx, cy, r) per object, in pixels at the output size, without overlaps (grid cells)."""
    s = IMAGE_SIZE
    if scene.count == 1:
        r = rng.uniform(10.0, 15.0) if scene.size == "large" else rng.uniform(5.0, 7.0)
        return [(rng.uniform(r + 2, s - r - 2), rng.uniform(r + 2, s - r - 2), r)]
    grid = 2 if (scene.size == "large" and scene.count <= 4) else 3
    cell = s / grid
    cells = rng.sample(range(grid * grid), scene.count)
    out = []
    for c in cells:
        gx, gy = c % grid, c // grid
        r = (
            (rng.uniform(8.0, 10.0) if grid == 2 else rng.uniform(4.5, 6.2))
            if scene.size == "large" or grid == 3
            else rng.uniform(5.0, 6.5)
        )
        if scene.size == "small" and grid == 2:
            r = rng.uniform(4.5, 6.0)
        slack = max(0.0, cell / 2 - r - 1)
        out.append(
            (gx * cell + cell / 2 + rng.uniform(-slack, slack), gy * cell + cell / 2 + rng.uniform(-slack, slack), r)
        )
    return out


def _background(name: str, rng: np.random.Generator, jitter: np.ndarray) -> np.ndarray:
    s = IMAGE_SIZE
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    n = rng.standard_normal((s, s)).astype(np.float32)

    def col(rgb):
        return np.broadcast_to(np.array(rgb, np.float32) + jitter, (s, s, 3)).copy()

    if name == "grass field":
        img = col((70, 140, 55))
        streak = np.repeat(rng.standard_normal((1, s)), s, 0) * 0.6 + n * 0.6
        img += streak[..., None] * np.array([10, 22, 8], np.float32)
    elif name == "sandy beach":
        img = col((218, 196, 148)) + (n * 10)[..., None]
        img[rng.random((s, s)) < 0.05] -= 45
    elif name == "snow field":
        img = col((232, 238, 246)) + (n * 6)[..., None] * np.array([1, 1, 0.6], np.float32)
    elif name == "blue sky":
        t = (yy / s)[..., None]
        img = col((95, 150, 225)) * (1 - t) + col((175, 210, 250)) * t
        for _ in range(rng.integers(1, 4)):
            cx, cy, rad = rng.uniform(0, s), rng.uniform(0, s * 0.7), rng.uniform(4, 9)
            cloud = np.exp(-(((xx - cx) / (1.8 * rad)) ** 2 + ((yy - cy) / rad) ** 2))
            img = img * (1 - cloud[..., None] * 0.8) + 250 * cloud[..., None] * 0.8
    elif name == "brick wall":
        img = col((155, 65, 45)) + (n * 8)[..., None]
        bh = rng.uniform(5, 7)
        row = np.floor(yy / bh)
        off = (row % 2) * 6
        mortar = ((yy % bh) < 1.2) | (((xx + off) % 12) < 1.2)
        img[mortar] = np.array([205, 200, 190], np.float32) + jitter
    elif name == "wooden floor":
        img = col((140, 92, 52))
        f = rng.uniform(0.5, 0.9)
        grain = np.sin(yy * f + 2.5 * np.sin(xx * 0.15 + rng.uniform(0, 6))) * 14 + n * 4
        img += grain[..., None]
        img[(yy % 12) < 1] -= 40
    elif name == "night sky":
        img = col((15, 20, 52)) + (n * 3)[..., None]
        stars = rng.random((s, s)) < 0.025
        img[stars] = 235
    elif name == "ocean water":
        img = col((30, 85, 160))
        waves = np.sin(yy * 0.9 + 1.5 * np.sin(xx * 0.25 + rng.uniform(0, 6))) * 16 + n * 5
        img += waves[..., None] * np.array([0.6, 0.9, 1.0], np.float32)
    else:  # pragma: no cover
        raise ValueError(name)
    return img


def _pattern_mask(pattern: str, rng: random.Random) -> np.ndarray | None:
    """Where the object's second tone goes (bool, at the output size), or None for plain/outlined."""
    s = IMAGE_SIZE
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    if pattern == "striped":
        a = rng.uniform(0, math.pi)
        period = rng.uniform(3.5, 4.5)
        return ((xx * math.cos(a) + yy * math.sin(a) + rng.uniform(0, period)) % period) < period / 2
    if pattern == "dotted":
        period = rng.uniform(4.0, 5.0)
        ox, oy = rng.uniform(0, period), rng.uniform(0, period)
        return (((xx + ox) % period - period / 2) ** 2 + ((yy + oy) % period - period / 2) ** 2) < (period * 0.28) ** 2
    if pattern == "checkered":
        period = rng.uniform(3.0, 4.0)
        return ((np.floor((xx + rng.uniform(0, 4)) / period) + np.floor((yy + rng.uniform(0, 4)) / period)) % 2) == 1
    if pattern == "two-tone":
        a = rng.uniform(0, 2 * math.pi)
        return (xx - s / 2) * math.cos(a) + (yy - s / 2) * math.sin(a) > 0
    return None


def render(scene: Scene, rng: random.Random, shift: Shift = Shift()) -> Image.Image:
    """Draw `scene` (48x48 RGB) with randomness from `rng`, under the downstream `shift`."""
    return _draw(scene, rng, shift)[0]


def _draw(scene: Scene, rng: random.Random, shift: Shift) -> tuple[Image.Image, np.ndarray]:
    """The image and its object mask: the fraction of each pixel the objects cover, (48, 48) float32 in [0, 1]
    (from the 2x supersampled shape masks; an outlined object covers its outline only). The mask is the
    objects as drawn, before the shift's clutter strokes, blur and noise."""
    s, big = IMAGE_SIZE, IMAGE_SIZE * _SS
    nrng = np.random.default_rng(rng.getrandbits(63))
    jitter = np.array([rng.uniform(-12, 12) for _ in range(3)], np.float32)
    if shift.palette:
        jitter = jitter + np.array([rng.uniform(-45, 45) * shift.palette for _ in range(3)], np.float32)
    img = _background(scene.background, nrng, jitter)

    base = np.array(COLOURS[scene.colour], np.float32) + np.array([rng.uniform(-18, 18) for _ in range(3)], np.float32)
    if shift.palette:
        base = base + np.array([rng.uniform(-50, 50) * shift.palette for _ in range(3)], np.float32)
    lum = base.mean()
    second = base * 0.35 if lum > 110 else base * 0.4 + 150  # a darker (or lighter) tone of the same colour
    fill_mask = Image.new("L", (big, big), 0)
    inner_mask = Image.new("L", (big, big), 0)
    d_fill, d_inner = ImageDraw.Draw(fill_mask), ImageDraw.Draw(inner_mask)
    tilt, spin = math.radians(rng.uniform(-15, 15)), rng.uniform(0, 2 * math.pi)
    for cx, cy, r in _layout(scene, rng):
        draw_shape(d_fill, scene.shape, cx * _SS, cy * _SS, r * _SS, tilt, spin)
        if scene.pattern == "outlined":
            draw_shape(d_inner, scene.shape, cx * _SS, cy * _SS, max(r - 2.0, r * 0.55) * _SS, tilt, spin)
    alpha = np.asarray(fill_mask.resize((s, s), Image.BOX), np.float32) / 255.0
    if scene.pattern == "outlined":
        alpha = np.clip(alpha - np.asarray(inner_mask.resize((s, s), Image.BOX), np.float32) / 255.0, 0, 1)
    colour = np.broadcast_to(base, (s, s, 3)).copy()
    second_mask = _pattern_mask(scene.pattern, rng)
    if second_mask is not None:
        colour[second_mask] = second
    img = img * (1 - alpha[..., None]) + colour * alpha[..., None]

    if shift.palette:  # desaturate towards grey
        grey = img.mean(-1, keepdims=True)
        img = img + (grey - img) * (0.45 * shift.palette * rng.random())
    if shift.dusk:
        img = img * (1 - shift.dusk * rng.uniform(0.8, 1.0)) + np.array([0, 8, 30], np.float32) * shift.dusk
    if shift.tint != (1.0, 1.0, 1.0):  # the same cast on every image: no randomness drawn
        img = img * np.array(shift.tint, np.float32)
    if shift.clutter:
        pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(pil)
        for _ in range(rng.randint(1, shift.clutter)):
            pts = [(rng.uniform(0, s), rng.uniform(0, s)) for _ in range(rng.randint(2, 3))]
            draw.line(pts, fill=tuple(rng.randint(0, 255) for _ in range(3)), width=1)
        img = np.asarray(pil, np.float32)
    if shift.blur:
        pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        img = np.asarray(pil.filter(ImageFilter.GaussianBlur(shift.blur * rng.uniform(0.5, 1.0))), np.float32)
    if shift.noise:
        img = img + nrng.standard_normal(img.shape).astype(np.float32) * (40 * shift.noise * rng.random())
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)), alpha


def sample(seed: int, index: int, shift: Shift = Shift()) -> tuple[Image.Image, str, Scene]:
    """The `index`-th (image, caption, scene) of the world seeded by `seed`: a pure function of both."""
    rng = random.Random(f"{GENERATOR_VERSION}/{seed}/{index}")
    scene = random_scene(rng)
    text = caption(scene, rng)
    return render(scene, rng, shift), text, scene


def object_mask(seed: int, index: int, shift: Shift = Shift()) -> np.ndarray:
    """The object mask of `sample(seed, index, shift)`'s image: (48, 48) float32, the fraction of each pixel
    covered by an object (0 = background). The same draw as the image: a pure function of the same integers."""
    rng = random.Random(f"{GENERATOR_VERSION}/{seed}/{index}")
    scene = random_scene(rng)
    caption(scene, rng)  # the caption's draws come before the drawing's
    return _draw(scene, rng, shift)[1]


def patch_coverage(mask: np.ndarray, grid: int) -> np.ndarray:
    """The fraction of each of `grid` x `grid` equal patches that `mask` (H, W, values in [0, 1]) covers, row-major
    like a ViT's patch tokens: (grid, grid) float64. Area-weighted, so it is exact also when `grid` does not
    divide the image (a 48 px scene at a 224 px model's 14 x 14 patches)."""
    m = np.asarray(mask, np.float64)
    h, w = m.shape
    rows, cols = _area_weights(h, grid), _area_weights(w, grid)
    return rows @ m @ cols.T


def _area_weights(n: int, grid: int) -> np.ndarray:
    """(grid, n): the share of pixel j inside patch i, divided by the patch's size in pixels."""
    edges = np.linspace(0.0, n, grid + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    j = np.arange(n)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None)
    return overlap / (hi - lo)


GROUP_ATTRIBUTES = {"shape": 0.3, "pattern": 0.25, "count": 0.25, "colour": 0.1, "background": 0.1}
_VALUES = {
    "shape": SHAPES,
    "pattern": PATTERNS,
    "count": tuple(range(1, MAX_COUNT + 1)),
    "colour": tuple(COLOURS),
    "background": SCENES,
}


def sample_group(seed: int, index: int, size: int = 4) -> list[tuple[Image.Image, str, Scene]]:
    """Group `index`: `size` scenes equal in everything but one attribute (distinct values), each caption
    naming that attribute. Pretraining batches are made of such groups, so that the contrastive loss
    cannot be met by background and colour alone (they are the easy cues a tiny CLIP learns first)."""
    rng = random.Random(f"{GENERATOR_VERSION}/group/{seed}/{index}")
    attr = rng.choices(list(GROUP_ATTRIBUTES), weights=list(GROUP_ATTRIBUTES.values()))[0]
    fixed = {
        "pattern": {"size": "large", "count": rng.randint(1, 2)},
        "count": {"size": "small"},
        "shape": {"count": rng.randint(1, 3)},
    }.get(attr, {})
    base = random_scene(rng, **fixed)
    out = []
    for value in rng.sample(_VALUES[attr], size):
        scene = Scene(**{**base.__dict__, attr: value})
        if attr == "count" or (attr != "pattern" and scene.count > 3):
            scene = Scene(**{**scene.__dict__, "size": "small"})
        out.append((render(scene, rng), caption(scene, rng, keep=attr), scene))
    return out


# -- the curriculum recipe (experimental; `dra pocket pretrain --recipe curriculum`) --------------------

CURRICULUM_STAGES = ("single", "counts", "full")
"""Stage 1 `single`: one large object, complete captions; 2 `counts`: one to six objects, complete
captions; 3 `full`: the pretraining distribution's groups (`sample_group`: partial captions)."""
CURRICULUM_ATTRIBUTES = {
    "single": {"shape": 0.4, "pattern": 0.35, "colour": 0.125, "background": 0.125},
    "counts": {"shape": 0.3, "pattern": 0.25, "count": 0.3, "colour": 0.075, "background": 0.075},
}


def complete_caption(scene: Scene, rng: random.Random) -> str:
    """A caption naming every attribute: count (a word, or "a" for one), size, colour, pattern, the shape
    noun and the background ("a photo of two small red striped circles on a grass field.")."""
    quantity = COUNT_WORDS[scene.count - 1] if scene.count > 1 or rng.random() < 0.3 else ""
    head = plural(scene.shape) if scene.count > 1 else scene.shape
    phrase = " ".join(w for w in (quantity, scene.size, scene.colour, scene.pattern, head) if w)
    phrase += " " + rng.choice(_BACKGROUND_PREPS).format(scene.background)
    return rng.choice(FRAMES).format(phrase)


def sample_curriculum_group(seed: int, index: int, stage: str, size: int = 4) -> list[tuple[Image.Image, str, Scene]]:
    """Group `index` of curriculum `stage` (CURRICULUM_STAGES): `size` scenes equal in everything but
    one attribute (distinct values). `single`: one large object each, complete captions; `counts`: any
    count, complete captions; `full`: `sample_group(seed, index, size)` itself."""
    if stage == "full":
        return sample_group(seed, index, size)
    if stage not in CURRICULUM_ATTRIBUTES:
        raise ValueError(f"curriculum stage must be one of {CURRICULUM_STAGES}, got {stage!r}")
    rng = random.Random(f"{GENERATOR_VERSION}/curriculum/{stage}/{seed}/{index}")
    weights = CURRICULUM_ATTRIBUTES[stage]
    attr = rng.choices(list(weights), weights=list(weights.values()))[0]
    if stage == "single":
        fixed = {"count": 1, "size": "large"}
    else:
        fixed = {"pattern": {"size": "large", "count": rng.randint(1, 2)}, "count": {"size": "small"}}.get(attr, {})
    base = random_scene(rng, **fixed)
    out = []
    for value in rng.sample(_VALUES[attr], size):
        scene = Scene(**{**base.__dict__, attr: value})
        if scene.count > 3:  # never differs from the base: counts groups are small, four+ are small
            scene = Scene(**{**scene.__dict__, "size": "small"})
        out.append((render(scene, rng), complete_caption(scene, rng), scene))
    return out


__all__ = [
    "CURRICULUM_STAGES",
    "CURRICULUM_ATTRIBUTES",
    "complete_caption",
    "sample_curriculum_group",
    "sample_group",
    "GROUP_ATTRIBUTES",
    "GENERATOR_VERSION",
    "IMAGE_SIZE",
    "SHAPES",
    "COLOURS",
    "PATTERNS",
    "SIZES",
    "SCENES",
    "COUNT_WORDS",
    "Scene",
    "Shift",
    "DOWNSTREAM_SHIFT",
    "STRONG_SHIFT",
    "DUSK_SHIFT",
    "random_scene",
    "caption",
    "render",
    "sample",
    "object_mask",
    "patch_coverage",
]
