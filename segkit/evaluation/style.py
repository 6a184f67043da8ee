"""How overlays look by default, without importing torch or PIL: the command-line parsers show these defaults and
:mod:`segkit.evaluation.viz` draws with them."""

from __future__ import annotations

__all__ = ["CONTOURS", "DEFAULT_ALPHA", "DEFAULT_CONTOUR", "LEGEND_FONT_SIZE"]

# Weight of the class colour in an overlay. Measured (CIE76 colour difference of the blend from the photo): VOC's
# "person" colour (192, 128, 128) over 8 skin tones moves them by a median 17.7 at alpha 0.5 (barely seen; the classes
# on the 8 shared real VOC photos move by 26-52 at 0.5), 21.4 at 0.6, 25.1 at 0.7. 0.6 gains a fifth in visibility
# and keeps 40% of the photo's own contrast inside a region; the contours (DEFAULT_CONTOUR) carry the boundary where a
# class colour is close to the photo's.
DEFAULT_ALPHA = 0.6
CONTOURS = ("white", "class", "none")  # class boundaries drawn opaque in white, in the class colour, or not at all
# White: a "person" boundary drawn in its own colour is as hard to see on skin as the fill (looked at on 8 skin tones,
# 3 real VOC photos and 1 ADE20K photo); a white line stands out on all of them.
DEFAULT_CONTOUR = "white"
LEGEND_FONT_SIZE = 20  # text height (px) of a standalone legend image (segkit infer --legend)
