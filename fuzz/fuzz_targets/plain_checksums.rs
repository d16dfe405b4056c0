#![no_main]
// Checksum files and `latest` files of plain artifacts (docs/SPEC.md
// §13.5): any bytes give a digest or an error, never a panic, and a digest
// found for a name is one the file lists.
use charter_release::plain;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let name = "panel-1.0.0.tar.gz";
    for nameless in [plain::NamelessLine::Refuse, plain::NamelessLine::MatchesAnyName] {
        if let Ok(d) = plain::checksum_for(data, name, nameless) {
            let lines = plain::checksum_lines(data).expect("a file that gave a digest parses");
            assert!(lines.iter().any(|(x, _)| *x == d), "a digest the file does not list");
        }
    }
    let _ = plain::parse_latest(data);
});
