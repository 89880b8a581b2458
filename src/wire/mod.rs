//! Wire elements of `urn:xmpp:presence-sync:0` (XEP §Protocol): being written.
