//! Byte endpoints of a run: a random-access source and a sequential sink.
//!
//! Both traits are blocking on purpose: they are called from GStreamer's streaming threads, where
//! blocking is how backpressure works. Implementations over async clients (S3) bridge with
//! `Handle::block_on` on those threads; they must never be called from a tokio worker thread.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Random-access input: the framework asks for exact ranges, so a demuxer that finds its index at
/// the end of a file reads only what it needs.
pub trait ByteSource: Send + Sync {
    /// Total size in bytes.
    fn size(&self) -> u64;
    /// Read up to `len` bytes at `offset`. Returns fewer bytes only at the end of the source.
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>>;
}

/// Sequential output. `finish` makes the output visible; `abort` discards everything written.
pub trait ByteSink: Send {
    fn write(&mut self, chunk: &[u8]) -> io::Result<()>;
    /// Commit the output; returns the bytes written.
    fn finish(self: Box<Self>) -> io::Result<u64>;
    /// Discard the partial output. Must be safe to call after a failed `write`.
    fn abort(self: Box<Self>) -> io::Result<()>;
}

/// A local file read with positional reads (no shared cursor, so reads never race).
pub struct FileSource {
    file: File,
    size: u64,
}

impl FileSource {
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let file = File::open(path.as_ref())?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
        }
        let size = meta.len();
        Ok(FileSource { file, size })
    }
}

impl ByteSource for FileSource {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let len = len.min(self.size.saturating_sub(offset) as usize);
        let mut buf = vec![0; len];
        let mut filled = 0;
        while filled < len {
            match self.file.read_at(&mut buf[filled..], offset + filled as u64)? {
                0 => break,
                n => filled += n,
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }
}

/// A local file written under a temporary name beside the target and renamed on `finish`, so a
/// reader never sees a half-written output and a failed run leaves nothing behind.
pub struct FileSink {
    target: PathBuf,
    temp: PathBuf,
    out: io::BufWriter<File>,
    written: u64,
}

impl FileSink {
    pub fn create(target: impl AsRef<Path>) -> io::Result<Self> {
        let target = target.as_ref().to_path_buf();
        let name = target
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "output path has no file name"))?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".{}.partial", std::process::id()));
        let temp = target.with_file_name(temp_name);
        let out = io::BufWriter::with_capacity(1 << 20, File::create(&temp)?);
        Ok(FileSink { target, temp, out, written: 0 })
    }
}

impl ByteSink for FileSink {
    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.out.write_all(chunk)?;
        self.written += chunk.len() as u64;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<u64> {
        self.out.flush()?;
        self.out.get_ref().sync_data()?;
        std::fs::rename(&self.temp, &self.target)?;
        Ok(self.written)
    }

    fn abort(self: Box<Self>) -> io::Result<()> {
        drop(self.out);
        match std::fs::remove_file(&self.temp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_source_reads_exact_ranges_and_short_at_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.bin");
        std::fs::write(&path, (0u8..=255).collect::<Vec<_>>()).unwrap();
        let src = FileSource::open(&path).unwrap();
        assert_eq!(src.size(), 256);
        assert_eq!(src.read_at(10, 3).unwrap(), vec![10, 11, 12]);
        assert_eq!(src.read_at(250, 100).unwrap().len(), 6);
        assert!(src.read_at(300, 10).unwrap().is_empty());
        assert!(FileSource::open(dir.path()).is_err(), "a directory is not a source");
    }

    #[test]
    fn file_sink_is_invisible_until_finish_and_abort_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.mp4");
        let mut sink = Box::new(FileSink::create(&target).unwrap());
        sink.write(b"hello ").unwrap();
        sink.write(b"world").unwrap();
        assert!(!target.exists());
        assert_eq!(sink.finish().unwrap(), 11);
        assert_eq!(std::fs::read(&target).unwrap(), b"hello world");

        let other = dir.path().join("other.mp4");
        let mut sink = Box::new(FileSink::create(&other).unwrap());
        sink.write(b"partial").unwrap();
        sink.abort().unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only out.mp4 remains");
    }
}
