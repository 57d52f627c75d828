//! Files and directories: `std::fs`'s functions and [`File`], with each call made through
//! [`crate::blocking`].
//!
//! Regular files are always "ready" to epoll, so file I/O cannot wait on the poller; a
//! read from a cold disk or a slow network filesystem simply blocks in the kernel. Go
//! therefore makes each file system call a blocking system call that hands its P to
//! another M (`entersyscall`/`exitsyscall`); here each call is a [`crate::blocking`] call:
//! the goroutine's P runs other goroutines if the call lasts (sysmon hands it on after
//! 20 µs), and the other goroutines and timers keep running even on `procs(1)`. On a
//! plain thread each function is just `std`'s.
//!
//! ```
//! use gmp_runtime::fs;
//!
//! let dir = std::env::temp_dir().join(format!("gmp-doc-fs-{}", std::process::id()));
//! fs::create_dir_all(&dir)?;
//! fs::write(dir.join("a.txt"), "hello")?;
//! assert_eq!(fs::read_to_string(dir.join("a.txt"))?, "hello");
//! let names: Vec<_> = fs::read_dir(&dir)?.map(|e| e.unwrap().file_name()).collect();
//! assert_eq!(names, ["a.txt"]);
//! fs::remove_dir_all(&dir)?;
//! # Ok::<(), std::io::Error>(())
//! ```

use crate::blocking;
use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

pub use std::fs::{DirEntry, FileTimes, FileType, Metadata, Permissions};

/// `std::fs::canonicalize` through [`blocking`].
pub fn canonicalize<P: AsRef<Path>>(path: P) -> io::Result<PathBuf> {
    blocking(|| std::fs::canonicalize(path))
}

/// `std::fs::copy` through [`blocking`].
pub fn copy<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<u64> {
    blocking(|| std::fs::copy(from, to))
}

/// `std::fs::create_dir` through [`blocking`].
pub fn create_dir<P: AsRef<Path>>(path: P) -> io::Result<()> {
    blocking(|| std::fs::create_dir(path))
}

/// `std::fs::create_dir_all` through [`blocking`].
pub fn create_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    blocking(|| std::fs::create_dir_all(path))
}

/// `std::fs::exists` through [`blocking`].
pub fn exists<P: AsRef<Path>>(path: P) -> io::Result<bool> {
    blocking(|| std::fs::exists(path))
}

/// `std::fs::hard_link` through [`blocking`].
pub fn hard_link<P: AsRef<Path>, Q: AsRef<Path>>(original: P, link: Q) -> io::Result<()> {
    blocking(|| std::fs::hard_link(original, link))
}

/// `std::fs::metadata` through [`blocking`].
pub fn metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    blocking(|| std::fs::metadata(path))
}

/// `std::fs::read` through [`blocking`].
pub fn read<P: AsRef<Path>>(path: P) -> io::Result<Vec<u8>> {
    blocking(|| std::fs::read(path))
}

/// `std::fs::read_dir` through [`blocking`]; each step of the iterator is a blocking
/// call too.
pub fn read_dir<P: AsRef<Path>>(path: P) -> io::Result<ReadDir> {
    blocking(|| std::fs::read_dir(path)).map(|inner| ReadDir { inner })
}

/// `std::fs::read_link` through [`blocking`].
pub fn read_link<P: AsRef<Path>>(path: P) -> io::Result<PathBuf> {
    blocking(|| std::fs::read_link(path))
}

/// `std::fs::read_to_string` through [`blocking`].
pub fn read_to_string<P: AsRef<Path>>(path: P) -> io::Result<String> {
    blocking(|| std::fs::read_to_string(path))
}

/// `std::fs::remove_dir` through [`blocking`].
pub fn remove_dir<P: AsRef<Path>>(path: P) -> io::Result<()> {
    blocking(|| std::fs::remove_dir(path))
}

/// `std::fs::remove_dir_all` through [`blocking`].
pub fn remove_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    blocking(|| std::fs::remove_dir_all(path))
}

/// `std::fs::remove_file` through [`blocking`].
pub fn remove_file<P: AsRef<Path>>(path: P) -> io::Result<()> {
    blocking(|| std::fs::remove_file(path))
}

/// `std::fs::rename` through [`blocking`].
pub fn rename<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<()> {
    blocking(|| std::fs::rename(from, to))
}

/// `std::fs::set_permissions` through [`blocking`].
pub fn set_permissions<P: AsRef<Path>>(path: P, perm: Permissions) -> io::Result<()> {
    blocking(|| std::fs::set_permissions(path, perm))
}

/// `std::fs::symlink_metadata` through [`blocking`].
pub fn symlink_metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    blocking(|| std::fs::symlink_metadata(path))
}

/// `std::fs::write` through [`blocking`].
pub fn write<P: AsRef<Path>, C: AsRef<[u8]>>(path: P, contents: C) -> io::Result<()> {
    blocking(|| std::fs::write(path, contents))
}

/// The iterator of [`read_dir`]: each `next` reads the directory through [`blocking`].
#[derive(Debug)]
pub struct ReadDir {
    inner: std::fs::ReadDir,
}

impl Iterator for ReadDir {
    type Item = io::Result<DirEntry>;
    fn next(&mut self) -> Option<io::Result<DirEntry>> {
        let inner = &mut self.inner;
        blocking(|| inner.next())
    }
}

/// An open file, as [`std::fs::File`], each call made through [`blocking`].
///
/// ```
/// use gmp_runtime::fs::File;
/// use std::io::{Read, Seek, SeekFrom, Write};
///
/// let path = std::env::temp_dir().join(format!("gmp-doc-file-{}", std::process::id()));
/// let mut f = File::options().read(true).write(true).create(true).truncate(true).open(&path)?;
/// f.write_all(b"0123456789")?;
/// f.seek(SeekFrom::Start(4))?;
/// let mut buf = [0; 3];
/// f.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"456");
/// assert_eq!(f.metadata()?.len(), 10);
/// gmp_runtime::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct File {
    inner: std::fs::File,
}

impl File {
    /// Opens `path` for reading.
    pub fn open<P: AsRef<Path>>(path: P) -> io::Result<File> {
        blocking(|| std::fs::File::open(path)).map(File::from_std)
    }

    /// Opens `path` for writing, creating or truncating it.
    pub fn create<P: AsRef<Path>>(path: P) -> io::Result<File> {
        blocking(|| std::fs::File::create(path)).map(File::from_std)
    }

    /// Creates a new file for reading and writing; an existing one is an error.
    pub fn create_new<P: AsRef<Path>>(path: P) -> io::Result<File> {
        blocking(|| std::fs::File::create_new(path)).map(File::from_std)
    }

    /// Open options, as [`std::fs::File::options`].
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Wraps a `std` file.
    pub fn from_std(inner: std::fs::File) -> File {
        File { inner }
    }

    /// The `std` file.
    pub fn into_std(self) -> std::fs::File {
        self.inner
    }

    /// Flushes data and metadata to the device (`fsync`).
    pub fn sync_all(&self) -> io::Result<()> {
        blocking(|| self.inner.sync_all())
    }

    /// Flushes data to the device (`fdatasync`).
    pub fn sync_data(&self) -> io::Result<()> {
        blocking(|| self.inner.sync_data())
    }

    /// Truncates or extends the file to `size` bytes.
    pub fn set_len(&self, size: u64) -> io::Result<()> {
        blocking(|| self.inner.set_len(size))
    }

    /// The file's metadata.
    pub fn metadata(&self) -> io::Result<Metadata> {
        blocking(|| self.inner.metadata())
    }

    /// A new handle to the same open file (a `dup`).
    pub fn try_clone(&self) -> io::Result<File> {
        blocking(|| self.inner.try_clone()).map(File::from_std)
    }

    /// Changes the file's permissions.
    pub fn set_permissions(&self, perm: Permissions) -> io::Result<()> {
        blocking(|| self.inner.set_permissions(perm))
    }

    /// Sets the access and modification times.
    pub fn set_times(&self, times: FileTimes) -> io::Result<()> {
        blocking(|| self.inner.set_times(times))
    }

    /// Sets the modification time.
    pub fn set_modified(&self, time: std::time::SystemTime) -> io::Result<()> {
        blocking(|| self.inner.set_modified(time))
    }
}

impl Read for &File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        blocking(|| (&self.inner).read(buf))
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        blocking(|| (&self.inner).read_vectored(bufs))
    }

    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        blocking(|| (&self.inner).read_to_end(buf))
    }

    fn read_to_string(&mut self, buf: &mut String) -> io::Result<usize> {
        blocking(|| (&self.inner).read_to_string(buf))
    }
}

impl Write for &File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        blocking(|| (&self.inner).write(buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        blocking(|| (&self.inner).write_vectored(bufs))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        blocking(|| (&self.inner).write_all(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for &File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        blocking(|| (&self.inner).seek(pos))
    }
}

impl Read for File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }

    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        (&*self).read_to_end(buf)
    }

    fn read_to_string(&mut self, buf: &mut String) -> io::Result<usize> {
        (&*self).read_to_string(buf)
    }
}

impl Write for File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        (&*self).write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        (&*self).seek(pos)
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl From<std::fs::File> for File {
    fn from(f: std::fs::File) -> File {
        File::from_std(f)
    }
}

impl From<OwnedFd> for File {
    fn from(fd: OwnedFd) -> File {
        File::from_std(std::fs::File::from(fd))
    }
}

impl From<File> for OwnedFd {
    fn from(f: File) -> OwnedFd {
        OwnedFd::from(f.inner)
    }
}

/// Options for opening a [`File`], as [`std::fs::OpenOptions`]; `open` goes through
/// [`blocking`].
#[derive(Clone, Debug)]
pub struct OpenOptions {
    inner: std::fs::OpenOptions,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenOptions {
    /// All options off.
    pub fn new() -> OpenOptions {
        OpenOptions {
            inner: std::fs::OpenOptions::new(),
        }
    }

    /// Read access.
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.inner.read(read);
        self
    }

    /// Write access.
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.inner.write(write);
        self
    }

    /// Append mode.
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.inner.append(append);
        self
    }

    /// Truncate an existing file.
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.inner.truncate(truncate);
        self
    }

    /// Create the file if it does not exist.
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.inner.create(create);
        self
    }

    /// Create the file, failing if it exists.
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.inner.create_new(create_new);
        self
    }

    /// The `std` options, for `std::os::unix::fs::OpenOptionsExt` (`mode`,
    /// `custom_flags`).
    pub fn as_std_mut(&mut self) -> &mut std::fs::OpenOptions {
        &mut self.inner
    }

    /// Opens `path` with these options.
    pub fn open<P: AsRef<Path>>(&self, path: P) -> io::Result<File> {
        blocking(|| self.inner.open(path)).map(File::from_std)
    }
}
