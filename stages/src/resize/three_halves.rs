//! Bicubic scaling by exactly 2/3 in both directions (1080p to 720p, 2160p to 1440p): the
//! platform's most common resize, in a kernel made for it.
//!
//! Why not swscale for this one too: swscale's horizontal pass is generic (any ratio), so it
//! fetches each output pixel's taps through a table of positions (gathers on AVX2). At 3:2 the
//! positions repeat every 3 input pixels, so here each row is split once into its three phases
//! (pixels 3m, 3m+1 and 3m+2), after which every tap is a contiguous, unaligned vector load.
//! The filter is swscale's bicubic (B = 0, C = 0.6) widened by the reduction, 6 taps, on the same
//! sample grid (pixel centres, MPEG-1/JPEG chroma sited like luma); the pictures agree with
//! swscale's within rounding (see the tests).
//!
//! Fixed point: samples are held as i16 at 1/64 (Q6), coefficients at 1/32768 (Q15), and each
//! product is `mulhrs` (multiply, round, keep the high half: `vpmulhrsw`), so the vector code and
//! the portable code below compute the same bits.

use super::swscale::Planes;

/// Taps per output sample: the bicubic kernel's 4 widened by 3/2.
const TAPS: usize = 6;
/// Q15 coefficients of the even outputs (centre 1/4 past an input sample, window starting 2 to
/// its left); the odd outputs use the mirror image.
type Phase = [i16; TAPS];

pub struct ThreeHalves {
    src_w: usize,
    src_h: usize,
    phases: [Phase; 2],
    kernels: Kernels,
    /// The three phases of one input row, with the edge samples repeated once at both ends
    /// (the kernel reaches 3 samples out).
    split: [Vec<i16>; 3],
    /// Horizontally scaled rows (Q6), the last `RING` of them, input row r at slot r % RING.
    ring: Vec<i16>,
}

/// An output pair reads 7 consecutive input rows; 8 keeps them all with room to fill ahead.
const RING: usize = 8;

impl ThreeHalves {
    /// A scaler from `src_w` x `src_h` to 2/3 of that, or `None` when the sizes are not an exact
    /// 3:2 in every plane (chroma is half size: both sizes must be multiples of 6).
    pub fn new(src_w: u32, src_h: u32, dst_w: u32, dst_h: u32) -> Option<Self> {
        let exact = |s: u32, d: u32| s.is_multiple_of(6) && s >= 6 && d * 3 == s * 2;
        if !(exact(src_w, dst_w) && exact(src_h, dst_h)) {
            return None;
        }
        let (src_w, src_h) = (src_w as usize, src_h as usize);
        let phases = phases();
        let split_len = src_w / 3 + 2;
        Some(ThreeHalves {
            src_w,
            src_h,
            phases,
            kernels: kernels(),
            split: [vec![0; split_len], vec![0; split_len], vec![0; split_len]],
            ring: vec![0; RING * src_w * 2 / 3],
        })
    }

    pub fn fits(&self, src_w: u32, src_h: u32, dst_w: u32, dst_h: u32) -> bool {
        (self.src_w, self.src_h) == (src_w as usize, src_h as usize)
            && dst_w as usize * 3 == self.src_w * 2
            && dst_h as usize * 3 == self.src_h * 2
    }

    /// Scale the three planes of an I420 picture.
    ///
    /// # Safety
    /// Each source plane must hold the source size (chroma at half size) at its stride, and each
    /// destination plane the destination size, for the whole height.
    pub unsafe fn scale(&mut self, src: &Planes<*const u8>, dst: &Planes<*mut u8>) {
        for plane in 0..3 {
            let shift = if plane == 0 { 0 } else { 1 };
            let (w, h) = (self.src_w >> shift, self.src_h >> shift);
            let (ss, ds) = (src.stride[plane] as isize, dst.stride[plane] as isize);
            let (from, to) = (src.data[plane], dst.data[plane]);
            let rows = |y: usize| std::slice::from_raw_parts(from.offset(y as isize * ss), w);
            let out = |y: usize| std::slice::from_raw_parts_mut(to.offset(y as isize * ds), w * 2 / 3);
            self.scale_plane(w, h, rows, out);
        }
    }

    fn scale_plane<'a, 'b>(
        &mut self,
        w: usize,
        h: usize,
        src_row: impl Fn(usize) -> &'a [u8],
        mut dst_row: impl FnMut(usize) -> &'b mut [u8],
    ) {
        let out_w = w * 2 / 3;
        let kernels = &self.kernels;
        let mut next = 0; // the next input row to scale horizontally
        for k in 0..h / 3 {
            // Output rows 2k and 2k+1 read input rows 3k-2 ..= 3k+4, clamped to the picture.
            let last = (3 * k + 4).min(h - 1);
            while next <= last {
                let slot = (next % RING) * out_w;
                let ring_row = &mut self.ring[slot..slot + out_w];
                horizontal(kernels, src_row(next), &mut self.split, ring_row, &self.phases);
                next += 1;
            }
            for (half, phase) in self.phases.iter().enumerate() {
                let first = 3 * k as isize - 2 + half as isize;
                let taps: [&[i16]; TAPS] = std::array::from_fn(|t| {
                    let r = (first + t as isize).clamp(0, h as isize - 1) as usize;
                    let slot = (r % RING) * out_w;
                    &self.ring[slot..slot + out_w]
                });
                (kernels.vertical)(&taps, phase, dst_row(2 * k + half));
            }
        }
    }
}

/// The row kernels, vector versions where the CPU has them.
struct Kernels {
    split: fn(&[u8], &mut [Vec<i16>; 3]),
    horizontal: fn(&[Vec<i16>; 3], &[Phase; 2], &mut [i16]),
    vertical: fn(&[&[i16]; TAPS], &Phase, &mut [u8]),
}

fn kernels() -> Kernels {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        return Kernels { split: avx2::split, horizontal: avx2::horizontal, vertical: avx2::vertical };
    }
    PORTABLE
}

const PORTABLE: Kernels =
    Kernels { split: portable::split, horizontal: portable::horizontal, vertical: portable::vertical };

/// Scale one input row horizontally into `out` (Q6): split it into phases, then filter.
/// `split[p][m]` is `row[3(m - 1) + p]` in Q6, the row's ends repeated past its edges.
fn horizontal(kernels: &Kernels, row: &[u8], split: &mut [Vec<i16>; 3], out: &mut [i16], phases: &[Phase; 2]) {
    let (w, n) = (row.len(), row.len() / 3);
    (kernels.split)(row, split);
    let (first, last) = ((row[0] as i16) << 6, (row[w - 1] as i16) << 6);
    for phase in split.iter_mut() {
        phase[0] = first;
        phase[n + 1] = last;
    }
    (kernels.horizontal)(split, phases, out);
}

/// The horizontal pass's ceiling, just under 256 in Q6: swscale clips its intermediate rows
/// there too (overshoot above white is cut before the vertical pass; below black it is kept).
const HORIZONTAL_MAX: i16 = (256 << 6) - 1;

/// `vpmulhrsw` on one lane: (a * b + 2^14) >> 15.
#[inline(always)]
fn mulhrs(a: i16, b: i16) -> i16 {
    ((a as i32 * b as i32 + 0x4000) >> 15) as i16
}

/// The Q15 taps of the two phases, from swscale's bicubic with B = 0 and C = 0.6 stretched by
/// 3/2, normalised to sum exactly to 1 (the rounding error goes to the largest tap).
fn phases() -> [Phase; 2] {
    let cubic = |x: f64| {
        let (b, c) = (0.0, 0.6);
        let x = x.abs();
        if x < 1.0 {
            ((12.0 - 9.0 * b - 6.0 * c) * x * x * x + (-18.0 + 12.0 * b + 6.0 * c) * x * x + (6.0 - 2.0 * b)) / 6.0
        } else if x < 2.0 {
            ((-b - 6.0 * c) * x * x * x
                + (6.0 * b + 30.0 * c) * x * x
                + (-12.0 * b - 48.0 * c) * x
                + (8.0 * b + 24.0 * c))
                / 6.0
        } else {
            0.0
        }
    };
    // Output 2k is centred at input 3k + 1/4 and reads inputs 3k-2 ..= 3k+3.
    let weights: Vec<f64> = (0..TAPS).map(|t| cubic((t as f64 - 2.0 - 0.25) / 1.5)).collect();
    let sum: f64 = weights.iter().sum();
    let mut even = [0i16; TAPS];
    for (q, w) in even.iter_mut().zip(&weights) {
        *q = (w / sum * 32768.0).round() as i16;
    }
    let error = 32768 - even.iter().map(|&q| q as i32).sum::<i32>();
    let largest = (0..TAPS).max_by_key(|&t| even[t]).unwrap();
    even[largest] = (even[largest] as i32 + error) as i16;
    let mut odd = even;
    odd.reverse();
    [even, odd]
}

/// The reference kernels, and the ones used where AVX2 is missing.
mod portable {
    use super::{mulhrs, Phase, HORIZONTAL_MAX, TAPS};

    pub fn split(row: &[u8], split: &mut [Vec<i16>; 3]) {
        split_from(row, split, 0);
    }

    /// `split[p][1 + m] = row[3m + p]` in Q6, from pixel triple `from` on.
    pub fn split_from(row: &[u8], split: &mut [Vec<i16>; 3], from: usize) {
        let [a, b, c] = split;
        for (m, px) in row.chunks_exact(3).enumerate().skip(from) {
            a[m + 1] = (px[0] as i16) << 6;
            b[m + 1] = (px[1] as i16) << 6;
            c[m + 1] = (px[2] as i16) << 6;
        }
    }

    pub fn horizontal(split: &[Vec<i16>; 3], phases: &[Phase; 2], out: &mut [i16]) {
        horizontal_from(split, phases, out, 0);
    }

    /// Output pairs `from` to the end of the row.
    pub fn horizontal_from(split: &[Vec<i16>; 3], phases: &[Phase; 2], out: &mut [i16], from: usize) {
        let [a, b, c] = split;
        let (e, o) = (&phases[0], &phases[1]);
        for k in from..out.len() / 2 {
            // Inputs 3k-2 ..= 3k+3 are b[k], c[k], a[k+1], b[k+1], c[k+1], a[k+2].
            let window = [b[k], c[k], a[k + 1], b[k + 1], c[k + 1], a[k + 2], b[k + 2]];
            out[2 * k] = (0..TAPS).fold(0i16, |s, t| s.wrapping_add(mulhrs(window[t], e[t]))).min(HORIZONTAL_MAX);
            out[2 * k + 1] =
                (0..TAPS).fold(0i16, |s, t| s.wrapping_add(mulhrs(window[t + 1], o[t]))).min(HORIZONTAL_MAX);
        }
    }

    pub fn vertical(rows: &[&[i16]; TAPS], phase: &Phase, out: &mut [u8]) {
        for (x, px) in out.iter_mut().enumerate() {
            let sum = (0..TAPS).fold(0i16, |s, t| s.wrapping_add(mulhrs(rows[t][x], phase[t])));
            *px = ((sum as i32 + 32) >> 6).clamp(0, 255) as u8;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Phase, HORIZONTAL_MAX, TAPS};

    pub fn split(row: &[u8], split: &mut [Vec<i16>; 3]) {
        // SAFETY: only selected after is_x86_feature_detected!("avx2").
        unsafe { split_avx2(row, split) }
    }

    pub fn horizontal(split: &[Vec<i16>; 3], phases: &[Phase; 2], out: &mut [i16]) {
        // SAFETY: as above.
        unsafe { horizontal_avx2(split, phases, out) }
    }

    pub fn vertical(rows: &[&[i16]; TAPS], phase: &Phase, out: &mut [u8]) {
        // SAFETY: as above.
        unsafe { vertical_avx2(rows, phase, out) }
    }

    /// Byte shuffles picking phase p's samples out of three 16-byte blocks (48 pixels, 16 of
    /// each phase): SHUFFLE[p][block] moves them to their places, -1 zeroes the rest.
    static SHUFFLE: [[[i8; 16]; 3]; 3] = {
        let mut table = [[[-1i8; 16]; 3]; 3];
        let mut p = 0;
        while p < 3 {
            let mut i = 0;
            while i < 16 {
                let at = 3 * i + p; // the pixel's index among the 48
                table[p][at / 16][i] = (at % 16) as i8;
                i += 1;
            }
            p += 1;
        }
        table
    };

    #[target_feature(enable = "avx2")]
    unsafe fn split_avx2(row: &[u8], split: &mut [Vec<i16>; 3]) {
        let n = row.len() / 3;
        let mask = |p: usize, block: usize| _mm_loadu_si128(SHUFFLE[p][block].as_ptr() as *const __m128i);
        let six = _mm_cvtsi32_si128(6);
        let mut m = 0;
        while m + 16 <= n {
            let src = row.as_ptr().add(3 * m) as *const __m128i;
            let blocks = [_mm_loadu_si128(src), _mm_loadu_si128(src.add(1)), _mm_loadu_si128(src.add(2))];
            for (p, phase) in split.iter_mut().enumerate() {
                let picked = _mm_or_si128(
                    _mm_or_si128(_mm_shuffle_epi8(blocks[0], mask(p, 0)), _mm_shuffle_epi8(blocks[1], mask(p, 1))),
                    _mm_shuffle_epi8(blocks[2], mask(p, 2)),
                );
                let wide = _mm256_sll_epi16(_mm256_cvtepu8_epi16(picked), six);
                _mm256_storeu_si256(phase.as_mut_ptr().add(1 + m) as *mut __m256i, wide);
            }
            m += 16;
        }
        super::portable::split_from(row, split, m);
    }

    #[target_feature(enable = "avx2")]
    unsafe fn horizontal_avx2(split: &[Vec<i16>; 3], phases: &[Phase; 2], out: &mut [i16]) {
        let [a, b, c] = split;
        let pairs = out.len() / 2;
        let e: [__m256i; TAPS] = std::array::from_fn(|t| _mm256_set1_epi16(phases[0][t]));
        let o: [__m256i; TAPS] = std::array::from_fn(|t| _mm256_set1_epi16(phases[1][t]));
        let max = _mm256_set1_epi16(HORIZONTAL_MAX);
        let load = |v: &Vec<i16>, at: usize| _mm256_loadu_si256(v.as_ptr().add(at) as *const __m256i);
        let mut k = 0;
        // 16 output pairs a step; the reads end at index k + 2 + 15, inside the split rows.
        while k + 16 <= pairs {
            let window = [
                load(b, k),
                load(c, k),
                load(a, k + 1),
                load(b, k + 1),
                load(c, k + 1),
                load(a, k + 2),
                load(b, k + 2),
            ];
            let mut even = _mm256_mulhrs_epi16(window[0], e[0]);
            let mut odd = _mm256_mulhrs_epi16(window[1], o[0]);
            for t in 1..TAPS {
                even = _mm256_add_epi16(even, _mm256_mulhrs_epi16(window[t], e[t]));
                odd = _mm256_add_epi16(odd, _mm256_mulhrs_epi16(window[t + 1], o[t]));
            }
            let (even, odd) = (_mm256_min_epi16(even, max), _mm256_min_epi16(odd, max));
            // Interleave even and odd outputs. Unpacking works within 128-bit lanes: `lo` holds
            // outputs 0-7 and 16-23, `hi` 8-15 and 24-31; store the four quarters in place
            // (cheaper than a cross-lane permute on CPUs that split 256-bit operations).
            let lo = _mm256_unpacklo_epi16(even, odd);
            let hi = _mm256_unpackhi_epi16(even, odd);
            let dst = out.as_mut_ptr().add(2 * k) as *mut __m128i;
            _mm_storeu_si128(dst, _mm256_castsi256_si128(lo));
            _mm_storeu_si128(dst.add(1), _mm256_castsi256_si128(hi));
            _mm_storeu_si128(dst.add(2), _mm256_extracti128_si256(lo, 1));
            _mm_storeu_si128(dst.add(3), _mm256_extracti128_si256(hi, 1));
            k += 16;
        }
        super::portable::horizontal_from(split, phases, out, k);
    }

    #[target_feature(enable = "avx2")]
    unsafe fn vertical_avx2(rows: &[&[i16]; TAPS], phase: &Phase, out: &mut [u8]) {
        let c: [__m256i; TAPS] = std::array::from_fn(|t| _mm256_set1_epi16(phase[t]));
        let round = _mm256_set1_epi16(32);
        let w = out.len();
        let mut x = 0;
        // 32 outputs a step: two vectors of 16 packed to bytes.
        while x + 32 <= w {
            let sum = |at: usize| {
                let mut s = _mm256_mulhrs_epi16(_mm256_loadu_si256(rows[0].as_ptr().add(at) as *const __m256i), c[0]);
                for t in 1..TAPS {
                    let v = _mm256_loadu_si256(rows[t].as_ptr().add(at) as *const __m256i);
                    s = _mm256_add_epi16(s, _mm256_mulhrs_epi16(v, c[t]));
                }
                _mm256_srai_epi16(_mm256_add_epi16(s, round), 6)
            };
            let (lo, hi) = (sum(x), sum(x + 16));
            // packus works within 128-bit lanes; restore the order of the 64-bit quarters.
            let packed = _mm256_permute4x64_epi64(_mm256_packus_epi16(lo, hi), 0b11_01_10_00);
            _mm256_storeu_si256(out.as_mut_ptr().add(x) as *mut __m256i, packed);
            x += 32;
        }
        if x < w {
            super::portable::vertical(&rows.map(|r| &r[x..]), phase, &mut out[x..]);
        }
    }
}

#[cfg(test)]
mod tests;
