//! `fs`: every call goes through `blocking`, so on one P the other goroutines keep
//! running while files are read and written.

use gmp_runtime::fs;
use gmp_runtime::{JoinHandle, Runtime};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn go<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    // SAFETY: the test goroutines hold no thread-local state across I/O.
    unsafe { gmp_runtime::spawn(f) }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gmp-fs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_thousand_goroutines_write_and_read_on_one_p() {
    const N: usize = 1000;
    let dir = temp_dir("many");
    let rt = Runtime::builder().procs(1).build().unwrap();
    // SAFETY: as for `go`.
    let (worst, ticks) = unsafe {
        rt.block_on(|| {
            let stop = Arc::new(AtomicBool::new(false));
            let tick = {
                let stop = stop.clone();
                go(move || {
                    let (mut worst, mut ticks) = (Duration::ZERO, 0u32);
                    let mut last = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        gmp_runtime::sleep(Duration::from_millis(5));
                        let now = Instant::now();
                        worst = worst.max(now - last);
                        last = now;
                        ticks += 1;
                    }
                    (worst, ticks)
                })
            };
            let workers: Vec<_> = (0..N)
                .map(|i| {
                    let p = dir.join(format!("f{i}"));
                    go(move || {
                        let body = format!("file {i} ").repeat(100);
                        fs::write(&p, &body).unwrap();
                        let mut f = fs::File::options().append(true).open(&p).unwrap();
                        f.write_all(b"end").unwrap();
                        drop(f);
                        let mut back = String::new();
                        fs::File::open(&p)
                            .unwrap()
                            .read_to_string(&mut back)
                            .unwrap();
                        assert_eq!(back, body + "end");
                        assert_eq!(fs::metadata(&p).unwrap().len(), back.len() as u64);
                        fs::remove_file(&p).unwrap();
                    })
                })
                .collect();
            for w in workers {
                w.join().unwrap();
            }
            stop.store(true, Ordering::Relaxed);
            tick.join().unwrap()
        })
    };
    println!("fs x{N} on procs(1): ticker {ticks} ticks, worst gap {worst:?}");
    assert!(worst < Duration::from_secs(2), "worst tick gap {worst:?}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_rest_of_the_api_on_a_plain_thread() {
    let dir = temp_dir("api");
    let a = dir.join("a");
    fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    let mut f = fs::File::create(&a).unwrap();
    f.write_all(b"0123456789").unwrap();
    f.sync_all().unwrap();
    f.set_len(5).unwrap();
    let mut f = fs::File::open(&a).unwrap();
    f.seek(SeekFrom::Start(2)).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "234");
    assert_eq!(fs::copy(&a, dir.join("b")).unwrap(), 5);
    fs::rename(dir.join("b"), dir.join("c")).unwrap();
    fs::hard_link(dir.join("c"), dir.join("d")).unwrap();
    assert!(fs::exists(dir.join("d")).unwrap());
    assert!(!fs::exists(dir.join("b")).unwrap());
    assert_eq!(fs::read(dir.join("d")).unwrap(), b"01234");
    assert!(fs::File::create_new(&a).is_err());
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "c", "d", "sub"]);
    assert_eq!(
        fs::canonicalize(dir.join("sub/deeper/..")).unwrap(),
        fs::canonicalize(dir.join("sub")).unwrap()
    );
    assert_eq!(
        fs::read_to_string(dir.join("missing")).unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
    fs::remove_dir(dir.join("sub/deeper")).unwrap();
    fs::remove_dir_all(&dir).unwrap();
    assert!(!dir.exists());
}
