use super::super::swscale::{self, Filter, Planes};
use super::*;

/// An I420 picture in one buffer.
struct Picture {
    w: usize,
    h: usize,
    data: Vec<u8>,
}

impl Picture {
    fn new(w: usize, h: usize, mut pixel: impl FnMut(usize, usize, usize) -> u8) -> Self {
        let mut data = Vec::with_capacity(w * h * 3 / 2);
        for plane in 0..3 {
            let (pw, ph) = if plane == 0 { (w, h) } else { (w / 2, h / 2) };
            for y in 0..ph {
                for x in 0..pw {
                    data.push(pixel(plane, x, y));
                }
            }
        }
        Picture { w, h, data }
    }

    fn blank(w: usize, h: usize) -> Self {
        Picture { w, h, data: vec![0; w * h * 3 / 2] }
    }

    fn offsets(&self) -> [usize; 3] {
        let luma = self.w * self.h;
        [0, luma, luma + luma / 4]
    }

    fn strides(&self) -> [i32; 3] {
        [self.w as i32, (self.w / 2) as i32, (self.w / 2) as i32]
    }

    fn planes(&self) -> Planes<*const u8> {
        Planes { data: self.offsets().map(|o| self.data[o..].as_ptr()), stride: self.strides() }
    }

    fn planes_mut(&mut self) -> Planes<*mut u8> {
        let (offsets, stride) = (self.offsets(), self.strides());
        let base = self.data.as_mut_ptr();
        // SAFETY: offsets inside the buffer.
        Planes { data: offsets.map(|o| unsafe { base.add(o) }), stride }
    }
}

/// Camera-like content: smooth shading, fine texture, noise and hard edges, different per plane.
fn scene(w: usize, h: usize) -> Picture {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 41) as f64 - 20.0
    };
    Picture::new(w, h, |plane, x, y| {
        let (x, y) = (x as f64, y as f64);
        let shade = 128.0 + 70.0 * (x / 37.0 + plane as f64).sin() * (y / 23.0).cos();
        let texture = 25.0 * ((x * 1.3).sin() + (y * 0.9).cos());
        let edge = if ((x / 40.0) as i64 + (y / 30.0) as i64) % 2 == 0 { 40.0 } else { -40.0 };
        (shade + texture + edge + noise()).clamp(0.0, 255.0) as u8
    })
}

fn scale_with_three_halves(src: &Picture) -> Picture {
    let (w, h) = (src.w * 2 / 3, src.h * 2 / 3);
    let mut out = Picture::blank(w, h);
    let mut scaler = ThreeHalves::new(src.w as u32, src.h as u32, w as u32, h as u32).expect("3:2");
    // SAFETY: both pictures hold their sizes at their strides.
    unsafe { scaler.scale(&src.planes(), &out.planes_mut()) };
    out
}

#[test]
fn the_taps_sum_to_one_and_mirror_each_other() {
    let [even, odd] = phases();
    assert_eq!(even.iter().map(|&c| c as i32).sum::<i32>(), 32768);
    assert_eq!(odd.iter().rev().collect::<Vec<_>>(), even.iter().collect::<Vec<_>>());
    // The centre of an even output lies 1/4 past input 3k (tap 2): the taps either side of it
    // weigh the most, the nearer one more.
    assert!(even[2] > even[3] && even[3] > even[1], "{even:?}");
    // Bicubic with C = 0.6 has negative lobes.
    assert!(even[0] < 0 && even[5] < 0, "{even:?}");
}

#[test]
fn only_exact_three_to_two_reductions_are_taken() {
    assert!(ThreeHalves::new(1920, 1080, 1280, 720).is_some());
    assert!(ThreeHalves::new(3840, 2160, 2560, 1440).is_some());
    assert!(ThreeHalves::new(1920, 1080, 1280, 721).is_none());
    assert!(ThreeHalves::new(1280, 720, 854, 480).is_none(), "854 x 3/2 is not 1280");
    // 1275 x 2/3 = 850, but the chroma planes (638 -> 425) are not 3:2 of whole pixels.
    assert!(ThreeHalves::new(1275, 720, 850, 480).is_none());
}

#[test]
fn flat_pictures_stay_flat() {
    for value in [0u8, 16, 128, 235, 255] {
        let src = Picture::new(96, 54 + 6, |_, _, _| value);
        let out = scale_with_three_halves(&src);
        assert!(out.data.iter().all(|&v| v == value), "value {value}");
    }
}

#[test]
fn the_vector_kernels_compute_the_same_bits_as_the_portable_ones() {
    // Widths with and without a remainder after the vector steps (16 pairs, 32 outputs).
    for w in [1920usize, 1926, 966, 60, 6] {
        let row = scene(w, 2).data[..w].to_vec();
        let mut split = [vec![0; w / 3 + 2], vec![0; w / 3 + 2], vec![0; w / 3 + 2]];
        let phases = phases();
        let mut want = vec![0i16; w * 2 / 3];
        horizontal(&PORTABLE, &row, &mut split, &mut want, &phases);
        let mut got = vec![0i16; w * 2 / 3];
        horizontal(&kernels(), &row, &mut split, &mut got, &phases);
        assert_eq!(first_difference(&got, &want), None, "horizontal, width {w}");

        let rows: Vec<Vec<i16>> =
            (0..TAPS).map(|t| want.iter().map(|&v| v.wrapping_add(t as i16 * 700)).collect()).collect();
        let taps: [&[i16]; TAPS] = std::array::from_fn(|t| rows[t].as_slice());
        for phase in &phases {
            let mut want = vec![0u8; w * 2 / 3];
            portable::vertical(&taps, phase, &mut want);
            let mut got = vec![0u8; w * 2 / 3];
            (kernels().vertical)(&taps, phase, &mut got);
            assert_eq!(first_difference(&got, &want), None, "vertical, width {w}");
        }
    }
}

/// Where two rows first differ: (index, got, want).
fn first_difference<T: PartialEq + Copy>(got: &[T], want: &[T]) -> Option<(usize, T, T)> {
    assert_eq!(got.len(), want.len());
    got.iter().zip(want).position(|(a, b)| a != b).map(|i| (i, got[i], want[i]))
}

#[test]
fn pictures_match_swscale_bicubic_within_rounding() {
    let src = scene(1920, 1080);
    let ours = scale_with_three_halves(&src);
    let mut theirs = Picture::blank(1280, 720);
    let mut sws = swscale::Scaler::new(1920, 1080, 1280, 720, Filter::Bicubic).expect("swscale");
    // SAFETY: both pictures hold their sizes at their strides.
    unsafe { sws.scale(&src.planes(), &theirs.planes_mut()) };

    let diffs: Vec<u32> = ours.data.iter().zip(&theirs.data).map(|(&a, &b)| a.abs_diff(b) as u32).collect();
    let worst = *diffs.iter().max().unwrap();
    let mean = diffs.iter().sum::<u32>() as f64 / diffs.len() as f64;
    eprintln!("against swscale: worst {worst}, mean {mean:.3}");
    // Two fixed-point implementations of one filter: off by one here and there from rounding
    // and from swscale's 14-bit taps (measured: 9 % of the samples), never more.
    assert!(worst <= 1, "worst difference {worst}");
    assert!(mean < 0.15, "mean difference {mean}");
}
