//! updater
