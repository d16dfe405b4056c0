//! charter-agent library (skeleton).
