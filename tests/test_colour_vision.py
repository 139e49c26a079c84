"""The palettes stay readable under simulated protanopia, deuteranopia and tritanopia (fmnist.colour_vision)."""

import pytest

from fmnist.colour_vision import SIMULATIONS, VISIONS, distance, lightness, report


def test_the_simulations_confuse_what_each_deficiency_confuses():
    # Red and green: far apart for typical vision, close for protanopia and deuteranopia, not for tritanopia.
    red, green = "#D62728", "#4D6600"
    assert distance(red, green, "typical") > 60
    assert distance(red, green, "protanopia") < 20 and distance(red, green, "deuteranopia") < 20
    assert distance(red, green, "tritanopia") > 40
    # Blue and green: tritanopia's confusion.
    assert distance("#1F77B4", "#2CA02C", "tritanopia") < distance("#1F77B4", "#2CA02C", "typical") / 2
    # Greys stay greys: every simulation keeps white, black and a mid grey where they are.
    for vision in SIMULATIONS:
        for grey in ("#FFFFFF", "#000000", "#777777"):
            assert lightness(grey, vision) == pytest.approx(lightness(grey, "typical"), abs=1.5)


@pytest.mark.parametrize("vision", list(VISIONS))
def test_every_palette_reads_under_each_vision(vision):
    rows = report()[vision]
    assert rows["confusion matrix (Blues)"]["lightness one way"]
    for scale in ("difference matrix (RdBu)", "saliency map"):
        assert rows[scale]["middle lightest"] and rows[scale]["ends ΔE"] > 30, (scale, rows[scale])
    assert rows["search statuses, closest pair"][0] > 10  # plainly different; pruned trials have their own symbol too
    assert rows["training vs validation curve"] > 30
