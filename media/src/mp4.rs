//! A bounded reader of an MP4/MOV header: finds the `moov` box among the top-level boxes and
//! reads, per track, its handler, sample entry, picture size, sample count and duration.
//!
//! It reads box headers and a few dozen bytes of each box it needs, never the sample tables
//! or the media data: a 10-minute clip costs a few dozen small ranged reads, all inside the
//! first block the download cache fetches for the demuxer anyway. Structural damage is not its
//! business: it then returns `None` and the demuxer reports the damage as it always has.

use std::io;
use std::time::Duration;

use crate::{Container, MediaFacts, Refusal, Track, TrackKind};

/// Largest `moov` accepted: the demuxer reads the whole box into memory. An hour at 240 fps
/// indexes in about 10 MiB.
pub const MAX_INDEX_BYTES: u64 = 64 << 20;
/// Top-level boxes scanned for `moov` before giving up (fragmented files repeat `moof`/`mdat`
/// pairs after their `moov`, which comes first).
const MAX_TOP_LEVEL_BOXES: usize = 1024;
/// Boxes visited inside `moov`.
const MAX_INDEX_BOXES: usize = 4096;

/// Random access to the file's bytes: up to `len` bytes at `offset`, fewer only at the end.
pub type ReadAt<'a> = &'a dyn Fn(u64, usize) -> io::Result<Vec<u8>>;

/// Why no facts came out.
#[derive(Debug)]
pub enum HeaderError {
    Io(io::Error),
    Refused(Refusal),
}

impl From<io::Error> for HeaderError {
    fn from(e: io::Error) -> Self {
        HeaderError::Io(e)
    }
}

#[derive(Debug, Clone, Copy)]
struct BoxHeader {
    kind: [u8; 4],
    /// Offset of the payload.
    body: u64,
    /// End of the box.
    end: u64,
}

/// Read the header of the box at `offset`, if a whole well-formed one lies before `limit`.
fn box_at(read: ReadAt, offset: u64, limit: u64) -> io::Result<Option<BoxHeader>> {
    if offset + 8 > limit {
        return Ok(None);
    }
    let head = read(offset, 16)?;
    if head.len() < 8 {
        return Ok(None);
    }
    let size32 = u32::from_be_bytes(head[0..4].try_into().unwrap()) as u64;
    let kind: [u8; 4] = head[4..8].try_into().unwrap();
    let (size, header) = match size32 {
        0 => (limit - offset, 8),
        1 if head.len() >= 16 => (u64::from_be_bytes(head[8..16].try_into().unwrap()), 16),
        1 => return Ok(None),
        n => (n, 8),
    };
    if size < header || offset.checked_add(size).is_none_or(|end| end > limit) {
        return Ok(None);
    }
    Ok(Some(BoxHeader { kind, body: offset + header, end: offset + size }))
}

/// The children of a box, bounded by the visit budget.
fn children(read: ReadAt, parent: BoxHeader, budget: &mut usize) -> io::Result<Vec<BoxHeader>> {
    let mut out = Vec::new();
    let mut at = parent.body;
    while let Some(child) = box_at(read, at, parent.end)? {
        if *budget == 0 {
            break;
        }
        *budget -= 1;
        at = child.end;
        out.push(child);
    }
    Ok(out)
}

fn find(boxes: &[BoxHeader], kind: &[u8; 4]) -> Option<BoxHeader> {
    boxes.iter().copied().find(|b| &b.kind == kind)
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn be64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Timescale and duration of a `mvhd` or `mdhd` (same layout up to there).
fn time_header(read: ReadAt, b: BoxHeader) -> io::Result<Option<(u32, u64)>> {
    let bytes = read(b.body, 32)?;
    Ok(match bytes.first() {
        Some(1) => be32(&bytes, 20).zip(be64(&bytes, 24)),
        Some(_) => be32(&bytes, 12).zip(be32(&bytes, 16).map(u64::from)),
        None => None,
    })
}

fn duration_of(timescale: u32, units: u64) -> Option<Duration> {
    // All ones means "unknown" in both versions.
    (timescale > 0 && units != u64::from(u32::MAX) && units != u64::MAX)
        .then(|| Duration::from_secs_f64(units as f64 / timescale as f64))
}

/// Read the facts of an ISO media file of `size` bytes. `Ok(None)` when no well-formed `moov`
/// was found (the demuxer then judges the file); a refusal when the index is too large.
pub fn read_facts(read: ReadAt, size: u64, container: Container) -> Result<Option<MediaFacts>, HeaderError> {
    let mut at = 0;
    let mut moov = None;
    for _ in 0..MAX_TOP_LEVEL_BOXES {
        let Some(b) = box_at(read, at, size)? else { break };
        if &b.kind == b"moov" {
            moov = Some(b);
            break;
        }
        at = b.end;
    }
    let Some(moov) = moov else { return Ok(None) };
    if moov.end - moov.body > MAX_INDEX_BYTES {
        return Err(HeaderError::Refused(Refusal::too_large(
            "max_index_bytes",
            moov.end - moov.body,
            MAX_INDEX_BYTES,
            &format!("the index (`moov`) is {} MiB", (moov.end - moov.body) >> 20),
        )));
    }
    let mut budget = MAX_INDEX_BOXES;
    let top = children(read, moov, &mut budget)?;
    let duration = match find(&top, b"mvhd") {
        Some(mvhd) => time_header(read, mvhd)?.and_then(|(scale, units)| duration_of(scale, units)),
        None => None,
    };
    let mut tracks = Vec::new();
    for trak in top.iter().filter(|b| &b.kind == b"trak") {
        if let Some(track) = read_track(read, *trak, &mut budget)? {
            tracks.push(track);
        }
    }
    Ok(Some(MediaFacts { container, duration, tracks }))
}

fn read_track(read: ReadAt, trak: BoxHeader, budget: &mut usize) -> io::Result<Option<Track>> {
    let Some(mdia) = find(&children(read, trak, budget)?, b"mdia") else { return Ok(None) };
    let mdia_children = children(read, mdia, budget)?;
    let kind = match find(&mdia_children, b"hdlr") {
        Some(hdlr) => match read(hdlr.body, 12)?.get(8..12) {
            Some(b"vide") => TrackKind::Video,
            Some(b"soun") => TrackKind::Audio,
            _ => TrackKind::Other,
        },
        None => TrackKind::Other,
    };
    let duration = match find(&mdia_children, b"mdhd") {
        Some(mdhd) => time_header(read, mdhd)?.and_then(|(scale, units)| duration_of(scale, units)),
        None => None,
    };
    let Some(minf) = find(&mdia_children, b"minf") else { return Ok(None) };
    let Some(stbl) = find(&children(read, minf, budget)?, b"stbl") else { return Ok(None) };
    let stbl_children = children(read, stbl, budget)?;

    let (mut codec, mut width, mut height) = (String::new(), 0, 0);
    if let Some(stsd) = find(&stbl_children, b"stsd") {
        // version/flags (4), entry count (4), then the first sample entry: size (4), type (4),
        // reserved (6), data reference (2); a visual entry then has 16 bytes before its size.
        let entry = read(stsd.body, 44)?;
        if let Some(kind) = entry.get(12..16) {
            codec = String::from_utf8_lossy(kind).into_owned();
        }
        if kind == TrackKind::Video {
            width = entry.get(40..42).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]) as u32);
            height = entry.get(42..44).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]) as u32);
        }
    }
    // `stsz`: version/flags (4), sample size (4), count (4); `stz2`: version/flags (4),
    // reserved and field size (4), count (4).
    let samples = match find(&stbl_children, b"stsz").or_else(|| find(&stbl_children, b"stz2")) {
        Some(b) => be32(&read(b.body, 12)?, 8).unwrap_or(0) as u64,
        None => 0,
    };
    Ok(Some(Track { kind, codec, width, height, samples, duration }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }

    fn time_box(kind: &[u8; 4], timescale: u32, units: u32) -> Vec<u8> {
        let mut body = vec![0u8; 12];
        body.extend(timescale.to_be_bytes());
        body.extend(units.to_be_bytes());
        body.extend([0u8; 8]);
        boxed(kind, &body)
    }

    fn trak(handler: &[u8; 4], entry: &[u8; 4], width: u16, height: u16, samples: u32, secs: u32) -> Vec<u8> {
        let hdlr = boxed(b"hdlr", &[&[0u8; 8][..], handler, &[0u8; 12]].concat());
        let mut sample_entry = vec![0u8; 24];
        sample_entry.extend(width.to_be_bytes());
        sample_entry.extend(height.to_be_bytes());
        sample_entry.extend([0u8; 50]);
        let stsd = boxed(b"stsd", &[&[0, 0, 0, 0, 0, 0, 0, 1][..], &boxed(entry, &sample_entry)].concat());
        let stsz = boxed(b"stsz", &[&[0u8; 4][..], &1000u32.to_be_bytes(), &samples.to_be_bytes()].concat());
        let stbl = boxed(b"stbl", &[stsd, stsz].concat());
        let minf = boxed(b"minf", &boxed(b"vmhd", &[0u8; 12]).into_iter().chain(stbl).collect::<Vec<_>>());
        let mdia = boxed(b"mdia", &[time_box(b"mdhd", 1000, secs * 1000), hdlr, minf].concat());
        boxed(b"trak", &[boxed(b"tkhd", &[0u8; 84]), mdia].concat())
    }

    fn file(traks: &[Vec<u8>], moov_last: bool) -> Vec<u8> {
        let ftyp = boxed(b"ftyp", b"isom\0\0\x02\0isomavc1");
        let moov = boxed(b"moov", &[time_box(b"mvhd", 600, 6000), traks.concat()].concat());
        let mdat = boxed(b"mdat", &[0x5a; 5000]);
        if moov_last {
            [ftyp, mdat, moov].concat()
        } else {
            [ftyp, moov, mdat].concat()
        }
    }

    fn facts(bytes: &[u8]) -> Result<Option<MediaFacts>, HeaderError> {
        let read = |offset: u64, len: usize| -> io::Result<Vec<u8>> {
            let start = (offset as usize).min(bytes.len());
            Ok(bytes[start..(start + len).min(bytes.len())].to_vec())
        };
        read_facts(&read, bytes.len() as u64, Container::Mp4)
    }

    #[test]
    fn tracks_sizes_counts_and_durations_are_read_wherever_the_index_is() {
        for moov_last in [false, true] {
            let bytes =
                file(&[trak(b"vide", b"hvc1", 3840, 2160, 600, 10), trak(b"soun", b"mp4a", 0, 0, 470, 10)], moov_last);
            let f = facts(&bytes).unwrap().unwrap();
            assert_eq!(f.duration, Some(Duration::from_secs(10)));
            assert_eq!(f.tracks.len(), 2);
            let v = f.video().unwrap();
            assert_eq!((v.codec.as_str(), v.width, v.height, v.samples), ("hvc1", 3840, 2160, 600));
            assert_eq!(v.fps(), Some(60.0));
            assert_eq!(f.tracks[1].kind, TrackKind::Audio);
            assert_eq!(f.media_streams(), 2);
        }
    }

    #[test]
    fn a_billion_samples_are_reported_not_read() {
        let bytes = file(&[trak(b"vide", b"avc1", 320, 240, 1_000_000_000, 10)], false);
        assert_eq!(facts(&bytes).unwrap().unwrap().tracks[0].samples, 1_000_000_000);
    }

    #[test]
    fn damaged_or_missing_indexes_leave_the_judgement_to_the_demuxer() {
        let mut cut = file(&[trak(b"vide", b"avc1", 320, 240, 30, 1)], true);
        cut.truncate(cut.len() - 40);
        assert!(facts(&cut).unwrap().is_none(), "a moov running past the end is not read");
        let mut bytes = b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41".to_vec();
        bytes.extend([0x5a; 1000]);
        assert!(facts(&bytes).unwrap().is_none());
        assert!(facts(&[0, 0, 0, 1, b'm', b'o', b'o', b'v']).unwrap().is_none(), "a 64-bit size with no room for it");
    }

    #[test]
    fn an_oversized_index_is_refused_from_its_header_alone() {
        let mut bytes = boxed(b"ftyp", b"isom\0\0\x02\0");
        bytes.extend(((MAX_INDEX_BYTES + 16) as u32).to_be_bytes());
        bytes.extend(b"moov");
        let size = bytes.len() as u64 + MAX_INDEX_BYTES + 8;
        let read = |offset: u64, len: usize| -> io::Result<Vec<u8>> {
            let start = (offset as usize).min(bytes.len());
            Ok(bytes[start..(start + len).min(bytes.len())].to_vec())
        };
        match read_facts(&read, size, Container::Mp4) {
            Err(HeaderError::Refused(r)) => assert_eq!(r.limit, "max_index_bytes"),
            other => panic!("{other:?}"),
        }
    }
}
