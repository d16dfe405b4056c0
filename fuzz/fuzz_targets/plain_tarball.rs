#![no_main]
// A plain artifact's tarball (docs/SPEC.md §13.5): the fuzz input is the
// tar stream, gzip'd here. Scanning must not panic, and whatever the scan
// accepts, extraction under the plain layout must accept too, into a
// fresh directory (the two read the same archive with the same rules).
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use charter_release::Limits;
use charter_release::manifest::{ArtifactFormat, compile_globs};
use charter_release::digest::Sha256Digest;
use charter_release::plain::{self, VerifiedChecksums};
use charter_updater::config::plain::PlainConfig;
use sha2::Digest;

static N: AtomicU64 = AtomicU64::new(0);

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&strip, tar)) = data.split_first() else {
        return;
    };
    let strip = usize::from(strip % 3);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(tar).expect("in memory");
    let gz = gz.finish().expect("in memory");
    let limits = Limits {
        max_files: 1000,
        ..Limits::default()
    };
    let config = compile_globs(&["etc/**".to_owned()]).expect("glob");
    let Ok(files) = plain::scan(
        &mut &gz[..],
        "fuzz.tar.gz",
        ArtifactFormat::TarGz,
        strip,
        &config,
        1 << 24,
        &limits,
    ) else {
        return;
    };
    let cfg: PlainConfig = toml::from_str("artifact = \"p-{version}.tar.gz\"").expect("config");
    let v = semver::Version::new(1, 0, 0);
    let checked = VerifiedChecksums::unverified_for_fuzzing(
        v.clone(),
        cfg.locate(&v),
        Sha256Digest(sha2::Sha256::digest(&gz).into()),
    );
    let Ok(m) = plain::synthesize(
        "p",
        &checked,
        ArtifactFormat::TarGz,
        gz.len() as u64,
        &["etc/**".to_owned()],
        files,
        &limits,
    ) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!(
        "charter-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let layout = charter_release::archive::Layout::Plain {
        strip_components: strip,
        max_unpacked: 1 << 24,
    };
    let r = charter_updater::host::extract::extract_with(&mut &gz[..], &m, &dir, &limits, layout);
    let _ = charter_updater::host::fs::remove_tree(&dir);
    if let Err(e) = r {
        panic!("scanned but not extracted: {e}");
    }
});
