//! FAT filesystems inside a partition of a disk or image file, made and filled with the
//! `fatfs` crate: no mkfs.vfat, no mount, no kernel vfat driver.

use std::io::{self, Read, Seek, SeekFrom, Write};

/// A window `[start, start + len)` of a disk, seen as a whole device.
pub struct Slice<'a, D> {
    disk: &'a mut D,
    start: u64,
    len: u64,
    pos: u64,
}

impl<'a, D: Seek> Slice<'a, D> {
    pub fn new(disk: &'a mut D, start: u64, len: u64) -> Self {
        Self {
            disk,
            start,
            len,
            pos: 0,
        }
    }
}

impl<D: Read + Seek> Read for Slice<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = self.len.saturating_sub(self.pos);
        let n = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        self.disk.seek(SeekFrom::Start(self.start + self.pos))?;
        let got = self.disk.read(&mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl<D: Write + Seek> Write for Slice<'_, D> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.len.saturating_sub(self.pos);
        let n = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        if n == 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write past the end of the partition",
            ));
        }
        self.disk.seek(SeekFrom::Start(self.start + self.pos))?;
        let put = self.disk.write(&buf[..n])?;
        self.pos += put as u64;
        Ok(put)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.disk.flush()
    }
}

impl<D: Seek> Seek for Slice<'_, D> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) if p <= self.len => {
                self.pos = p;
                Ok(p)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek outside the partition",
            )),
        }
    }
}

/// An 11-byte FAT volume label (upper case, space padded).
pub fn volume_label(name: &str) -> [u8; 11] {
    let mut label = [b' '; 11];
    for (to, from) in label.iter_mut().zip(name.bytes()) {
        *to = from.to_ascii_uppercase();
    }
    label
}

/// Format `[start, start + len)` of `disk` as FAT with `label`.
pub fn format<D: Read + Write + Seek>(
    disk: &mut D,
    start: u64,
    len: u64,
    label: &str,
    cluster: u32,
) -> io::Result<()> {
    let options = fatfs::FormatVolumeOptions::new()
        .volume_label(volume_label(label))
        .bytes_per_cluster(cluster);
    fatfs::format_volume(Slice::new(disk, start, len), options)
}

/// The FAT filesystem in `[start, start + len)` of `disk`.
pub fn open<D: Read + Write + Seek>(
    disk: &mut D,
    start: u64,
    len: u64,
) -> io::Result<fatfs::FileSystem<Slice<'_, D>>> {
    fatfs::FileSystem::new(Slice::new(disk, start, len), fatfs::FsOptions::new())
}

/// Create `path` (`a/b/c`, directories made as needed) and fill it from `from`, calling
/// `progress` with the bytes written so far.
pub fn put<T: fatfs::ReadWriteSeek>(
    fs: &fatfs::FileSystem<T>,
    path: &str,
    from: &mut dyn Read,
    progress: &mut dyn FnMut(u64),
) -> io::Result<u64> {
    let root = fs.root_dir();
    let (dirs, name) = path.rsplit_once('/').unwrap_or(("", path));
    let mut dir = root;
    for part in dirs.split('/').filter(|p| !p.is_empty()) {
        dir = dir.create_dir(part)?;
    }
    let mut file = dir.create_file(name)?;
    file.truncate()?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])?;
        total += n as u64;
        progress(total);
    }
    file.flush()?;
    Ok(total)
}

/// Read `path` from the filesystem.
pub fn get<T: fatfs::ReadWriteSeek>(fs: &fatfs::FileSystem<T>, path: &str) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    fs.root_dir().open_file(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn a_filesystem_in_a_partition_keeps_its_neighbours() {
        let mut disk = Cursor::new(vec![0x55u8; 8 << 20]);
        format(&mut disk, 1 << 20, 4 << 20, "berth_boot", 4096).unwrap();
        {
            let fs = open(&mut disk, 1 << 20, 4 << 20).unwrap();
            let mut seen = 0;
            put(&fs, "grub/grub.cfg", &mut &b"menuentry"[..], &mut |n| seen = n).unwrap();
            assert_eq!(seen, 9);
            assert_eq!(fs.volume_label(), "BERTH_BOOT");
            fs.unmount().unwrap();
        }
        let bytes = disk.get_ref();
        assert!(bytes[..1 << 20].iter().all(|b| *b == 0x55));
        assert!(bytes[5 << 20..].iter().all(|b| *b == 0x55));
        let fs = open(&mut disk, 1 << 20, 4 << 20).unwrap();
        assert_eq!(get(&fs, "grub/grub.cfg").unwrap(), b"menuentry");
    }

    #[test]
    fn the_slice_ends_where_the_partition_ends() {
        let mut disk = Cursor::new(vec![0u8; 100]);
        let mut slice = Slice::new(&mut disk, 10, 20);
        assert!(slice.seek(SeekFrom::Start(21)).is_err());
        slice.seek(SeekFrom::End(-5)).unwrap();
        assert!(slice.write_all(&[1u8; 6]).is_err());
        assert_eq!(disk.get_ref()[30], 0);
    }
}
