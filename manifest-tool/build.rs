// Build information for `version --json`: see build/buildinfo.rs.
include!("../build/buildinfo.rs");
