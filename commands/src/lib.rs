//! What the user commands share: the QR code of an enrollment in the
//! terminal. (Their output, `say!`, and their command lines, `cli`, are
//! the config crate's: mfad uses them too.)

pub mod qr;
