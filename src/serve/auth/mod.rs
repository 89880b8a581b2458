//! Authentication for c2s streams, sans-IO: salted credentials ([`Credentials`]), the server
//! side of SASL PLAIN and SCRAM ([`Sasl`], RFC 6120 §6) and XEP-0077 in-band registration
//! ([`register`]).
//!
//! Nothing here touches a socket or the storage: the c2s layer feeds in what the client sent
//! and acts on what comes back; the storage keeps [`Credentials`] (never a password).
mod credentials;
pub mod register;
mod sasl;

pub use credentials::{
    BadPassword, Credentials, CredentialsError, MIN_ITERATIONS, SALT_LEN, ScramHash, ScramKeys,
    prepare_password,
};
pub use sasl::{Exchange, Failure, MECHANISMS, Sasl, SaslError, Step};
