"""The app's palettes as people with colour-vision deficiency see them: `python -m fmnist.colour_vision`
prints, for protanopia, deuteranopia and tritanopia (full severity, the matrices of Machado, Oliveira
and Fernandes 2009, applied in linear RGB), how far apart the colours that must be told apart stay
(CIE76 ΔE in CIELAB: about 2 is just noticeable, 10 plainly different), and whether the scales still
run from dark to light. docs/accessibility.md records the result."""

import numpy as np
from plotly.colors import diverging, sequential, unlabel_rgb

from fmnist.charts import TRAIN_COLOR, VAL_COLOR
from fmnist.inside_charts import DIVERGING
from fmnist.runs import RunStatus
from fmnist.search_charts import STATUS_COLORS

SIMULATIONS = {
    "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]]),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]]),
}
VISIONS = {"typical": np.eye(3), **SIMULATIONS}
# The statuses a search's charts show side by side (queued and cancelled trials share a grey, failed
# and interrupted another: each pair means the same to the person).
SEARCH_STATUSES = [RunStatus.FINISHED, RunStatus.PRUNED, RunStatus.RUNNING, RunStatus.STOPPED, RunStatus.FAILED, RunStatus.QUEUED]


def rgb(colour: str) -> np.ndarray:
    """'#RRGGBB' or 'rgb(r,g,b)' as sRGB in 0..1."""
    if colour.startswith("#"):
        return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    return np.array(unlabel_rgb(colour), dtype=float) / 255


def to_linear(srgb: np.ndarray) -> np.ndarray:
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def to_srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0, 1)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def seen_as(colour: str, vision: str) -> np.ndarray:
    """The colour's sRGB as someone with this vision sees it."""
    return to_srgb(VISIONS[vision] @ to_linear(rgb(colour)))


def lab(srgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of an sRGB colour."""
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ to_linear(srgb)
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def distance(a: str, b: str, vision: str) -> float:
    return float(np.linalg.norm(lab(seen_as(a, vision)) - lab(seen_as(b, vision))))


def lightness(colour: str, vision: str) -> float:
    return float(lab(seen_as(colour, vision))[0])


def closest_pair(colours: dict, vision: str) -> tuple[float, str, str]:
    names = list(colours)
    return min((distance(colours[a], colours[b], vision), a, b) for i, a in enumerate(names) for b in names[i + 1:])


def sequential_report(stops: list[str], vision: str) -> dict:
    """A sequential scale still reads as more or less: its lightness runs one way, end to end."""
    steps = np.diff([lightness(c, vision) for c in stops])
    return {"lightness one way": bool((steps > 0).all() or (steps < 0).all()), "ends ΔE": distance(stops[0], stops[-1], vision)}


def diverging_report(stops: list[str], vision: str) -> dict:
    """A diverging scale still tells its two sides apart, and its middle (zero) is lighter than either end."""
    light = [lightness(c, vision) for c in stops]
    return {"ends ΔE": distance(stops[0], stops[-1], vision), "middle lightest": light[len(light) // 2] > max(light[0], light[-1])}


def report() -> dict:
    sequential_scales = {"confusion matrix (Blues)": sequential.Blues}
    diverging_scales = {"difference matrix (RdBu)": diverging.RdBu, "saliency map": [colour for _, colour in DIVERGING]}
    statuses = {str(status): STATUS_COLORS[status] for status in SEARCH_STATUSES}
    out = {}
    for vision in VISIONS:
        closest = closest_pair(statuses, vision)
        out[vision] = {
            **{name: sequential_report(stops, vision) for name, stops in sequential_scales.items()},
            **{name: diverging_report(stops, vision) for name, stops in diverging_scales.items()},
            "search statuses, closest pair": (round(closest[0], 1), closest[1], closest[2]),
            "training vs validation curve": round(distance(TRAIN_COLOR, VAL_COLOR, vision), 1),
        }
    return out


def main() -> None:
    for vision, rows in report().items():
        print(vision)
        for name, value in rows.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k}={round(v, 1) if isinstance(v, float) else v}" for k, v in value.items())
            print(f"  {name}: {value}")


if __name__ == "__main__":
    main()
