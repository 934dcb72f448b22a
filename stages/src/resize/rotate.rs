//! Quarter-turn rotations of one plane, for phone clips that carry an `image-orientation` tag.

/// Clockwise rotation needed to display the picture upright (GStreamer's `rotate-N` tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rotation {
    #[default]
    None,
    Cw90,
    Cw180,
    Cw270,
}

impl Rotation {
    /// `rotate-0|90|180|270`; flipped orientations are not supported (returns `None`).
    pub fn from_tag(tag: &str) -> Option<Self> {
        match tag {
            "rotate-0" => Some(Rotation::None),
            "rotate-90" => Some(Rotation::Cw90),
            "rotate-180" => Some(Rotation::Cw180),
            "rotate-270" => Some(Rotation::Cw270),
            _ => None,
        }
    }

    pub fn swaps_axes(self) -> bool {
        matches!(self, Rotation::Cw90 | Rotation::Cw270)
    }

    /// Map a crop of the displayed (rotated) picture back to the stored picture of `w` x `h`.
    pub fn crop_in_source(self, crop: (u32, u32, u32, u32), w: u32, h: u32) -> (u32, u32, u32, u32) {
        let (x, y, cw, ch) = crop;
        match self {
            Rotation::None => crop,
            Rotation::Cw90 => (y, h - x - cw, ch, cw),
            Rotation::Cw180 => (w - x - cw, h - y - ch, cw, ch),
            Rotation::Cw270 => (w - y - ch, x, ch, cw),
        }
    }
}

/// Write `src` (a packed `sw` x `sh` plane) rotated into `dst` (stride `dst_stride`), whose
/// target rectangle is `size` = (w, h): (sh, sw) for quarter turns, (sw, sh) for a half turn.
pub fn rotate_into(
    r: Rotation,
    src: &[u8],
    sw: usize,
    sh: usize,
    dst: &mut [u8],
    dst_stride: usize,
    size: (usize, usize),
) {
    let (w, h) = size;
    for y in 0..h {
        let row = &mut dst[y * dst_stride..y * dst_stride + w];
        for (x, px) in row.iter_mut().enumerate() {
            // Source position of output (x, y).
            let (sx, sy) = match r {
                Rotation::None => (x, y),
                Rotation::Cw90 => (y, sh - 1 - x),
                Rotation::Cw180 => (sw - 1 - x, sh - 1 - y),
                Rotation::Cw270 => (sw - 1 - y, x),
            };
            *px = src[sy * sw + sx];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A 3x2 picture:      rotated 90 clockwise (2x3):
    //   1 2 3               4 1
    //   4 5 6               5 2
    //                       6 3
    #[test]
    fn quarter_turns_match_their_definition() {
        let src = [1, 2, 3, 4, 5, 6];
        let mut out = [0u8; 6];
        rotate_into(Rotation::Cw90, &src, 3, 2, &mut out, 2, (2, 3));
        assert_eq!(out, [4, 1, 5, 2, 6, 3]);
        rotate_into(Rotation::Cw270, &src, 3, 2, &mut out, 2, (2, 3));
        assert_eq!(out, [3, 6, 2, 5, 1, 4]);
        rotate_into(Rotation::Cw180, &src, 3, 2, &mut out, 3, (3, 2));
        assert_eq!(out, [6, 5, 4, 3, 2, 1]);
    }

    #[test]
    fn crops_map_back_to_the_stored_picture() {
        // Stored 1920x1080, displayed 1080x1920 after a quarter turn; crop the top 1080x608.
        assert_eq!(Rotation::Cw90.crop_in_source((0, 0, 1080, 608), 1920, 1080), (0, 0, 608, 1080));
        assert_eq!(Rotation::Cw270.crop_in_source((0, 0, 1080, 608), 1920, 1080), (1312, 0, 608, 1080));
        assert_eq!(Rotation::Cw180.crop_in_source((0, 0, 100, 50), 1920, 1080), (1820, 1030, 100, 50));
        assert_eq!(Rotation::from_tag("flip-rotate-90"), None);
    }
}
