//! A pool's log file, `<log_dir>/<pool>.log`, with size-based rotation and
//! a cap on the pool's total (pm2 #1309: a disk filled by logs).
//!
//! Before a line would take `<pool>.log` past `max_size`, the file is
//! rotated: `<pool>.log.N` becomes `.N+1`, …, `<pool>.log` becomes
//! `<pool>.log.1`, and a new `<pool>.log` is started. Then the oldest
//! rotated files are deleted until the rotated ones and a full current
//! file fit in `max_total`. So every file stays within `max_size` (a single
//! line longer than that gets a file of its own), and the pool's files
//! within `max_total`.
//!
//! Plain blocking `std::fs` I/O: it runs on the writer thread
//! ([`super::writer`]), never on the runtime.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where and how much one pool logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limits {
    /// The directory of `<pool>.log`.
    pub(crate) dir: PathBuf,
    /// Rotate before `<pool>.log` would exceed this many bytes.
    pub(crate) max_size: u64,
    /// The pool's files together stay within this many bytes.
    pub(crate) max_total: u64,
}

/// One pool's open log file.
#[derive(Debug)]
pub(crate) struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    /// Sizes of the rotated files, `.1` (newest) first.
    rotated: Vec<u64>,
    max_size: u64,
    max_total: u64,
}

impl RotatingFile {
    /// Opens (appending) `<dir>/<pool>.log`, creating the directory, and
    /// takes stock of the rotated files already there.
    pub(crate) fn open(pool: &str, limits: &Limits) -> io::Result<Self> {
        fs::create_dir_all(&limits.dir)?;
        let path = limits.dir.join(format!("{pool}.log"));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        let mut rotated = Vec::new();
        while let Ok(meta) = fs::metadata(numbered(&path, rotated.len() + 1)) {
            rotated.push(meta.len());
        }
        let mut this = Self {
            path,
            file,
            size,
            rotated,
            max_size: limits.max_size,
            max_total: limits.max_total,
        };
        this.trim()?;
        Ok(this)
    }

    /// `<pool>.log`'s path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `<pool>.log` again by its path (after failed writes: the file
    /// may have been replaced meanwhile), and takes its size anew.
    pub(crate) fn reopen(&mut self) -> io::Result<()> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = file.metadata()?.len();
        self.file = file;
        Ok(())
    }

    /// Appends `line` (with its newline), rotating first if it would not fit.
    pub(crate) fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        for n in (1..=self.rotated.len()).rev() {
            fs::rename(numbered(&self.path, n), numbered(&self.path, n + 1))?;
        }
        fs::rename(&self.path, numbered(&self.path, 1))?;
        self.rotated.insert(0, self.size);
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = 0;
        self.trim()
    }

    /// Deletes the oldest rotated files until they and a full current
    /// file fit in `max_total`.
    fn trim(&mut self) -> io::Result<()> {
        let room = self.max_total.saturating_sub(self.max_size.max(self.size));
        while self.rotated.iter().sum::<u64>() > room {
            let n = self.rotated.len();
            match fs::remove_file(numbered(&self.path, n)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            self.rotated.pop();
        }
        Ok(())
    }
}

/// `<pool>.log.N`.
fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nanny-files-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn sizes(dir: &Path) -> Vec<(String, u64)> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.file_name().into_string().unwrap(), e.metadata().unwrap().len()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn files_rotate_at_the_size_and_the_oldest_go_past_the_total() {
        let dir = dir("rotate");
        let limits = Limits {
            dir: dir.clone(),
            max_size: 100,
            max_total: 350,
        };
        let mut f = RotatingFile::open("web", &limits).unwrap();
        for i in 0..100 {
            f.write_line(format!("line {i:04} ......\n").as_bytes()).unwrap(); // 20 bytes
        }
        let files = sizes(&dir);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        // 350 − 100 leaves room for two full rotated files.
        assert_eq!(names, ["web.log", "web.log.1", "web.log.2"]);
        assert!(files.iter().all(|(_, s)| *s <= 100), "{files:?}");
        assert!(files.iter().map(|(_, s)| s).sum::<u64>() <= 350);
        let newest = fs::read_to_string(dir.join("web.log")).unwrap();
        assert!(newest.ends_with("line 0099 ......\n"), "{newest}");
        let older = fs::read_to_string(dir.join("web.log.1")).unwrap();
        assert!(older.ends_with("line 0094 ......\n"), "{older}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn reopening_continues_and_trims_what_is_there() {
        let dir = dir("reopen");
        let big = Limits {
            dir: dir.clone(),
            max_size: 50,
            max_total: 1000,
        };
        let mut f = RotatingFile::open("p", &big).unwrap();
        for _ in 0..20 {
            f.write_line(b"0123456789abcdefghi\n").unwrap();
        }
        drop(f);
        assert_eq!(sizes(&dir).len(), 10);
        let small = Limits {
            max_total: 150,
            ..big
        };
        let mut f = RotatingFile::open("p", &small).unwrap();
        f.write_line(b"x\n").unwrap();
        let files = sizes(&dir);
        assert_eq!(files.len(), 3, "{files:?}");
        assert!(files.iter().map(|(_, s)| s).sum::<u64>() <= 150);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_line_longer_than_the_size_gets_a_file_of_its_own() {
        let dir = dir("long");
        let limits = Limits {
            dir: dir.clone(),
            max_size: 10,
            max_total: 100,
        };
        let mut f = RotatingFile::open("p", &limits).unwrap();
        f.write_line(b"short\n").unwrap();
        f.write_line(b"a much longer line\n").unwrap();
        f.write_line(b"end\n").unwrap();
        assert_eq!(fs::read_to_string(dir.join("p.log")).unwrap(), "end\n");
        assert_eq!(
            fs::read_to_string(dir.join("p.log.1")).unwrap(),
            "a much longer line\n"
        );
        assert_eq!(fs::read_to_string(dir.join("p.log.2")).unwrap(), "short\n");
        fs::remove_dir_all(dir).unwrap();
    }
}
