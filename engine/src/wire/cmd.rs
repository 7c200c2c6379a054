//! Open command and reason newtypes: every `u8` stays representable (an unknown command is
//! still a value the relay can reject by name), the known ones are associated consts.

use core::fmt;

macro_rules! open_u8 {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$cmeta:meta])* $konst:ident = $value:literal,)* }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(
            /// The byte on the wire; every value is representable, known or not.
            pub u8,
        );

        impl $name {
            $($(#[$cmeta])* pub const $konst: Self = Self($value);)*

            /// The spec's name for this value, if it has one.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($konst)),)*
                    _ => None,
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, concat!(stringify!($name), "({})"), self.0),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }

        impl From<u8> for $name {
            fn from(raw: u8) -> Self {
                Self(raw)
            }
        }

        impl From<$name> for u8 {
            fn from(value: $name) -> u8 {
                value.0
            }
        }
    };
}

open_u8! {
    /// A channel cell command (tor-spec section 3, "Cell commands").
    ChanCmd {
        /// Link padding: a fixed cell the receiver drops (tor-spec 3, padding-spec).
        PADDING = 0,
        /// Create a circuit with the obsolete TAP handshake (tor-spec 5.1).
        CREATE = 1,
        /// The answer to CREATE.
        CREATED = 2,
        /// A relay cell: the body is the onion-encrypted relay header and data (tor-spec 6).
        RELAY = 3,
        /// Tear down a circuit; the body starts with a [`DestroyReason`] (tor-spec 5.4).
        DESTROY = 4,
        /// Create a circuit without public-key crypto: the body is X (tor-spec 5.1.5).
        CREATE_FAST = 5,
        /// The answer to CREATE_FAST: `Y | KH`.
        CREATED_FAST = 6,
        /// Link version negotiation; the first cell on a channel, variable-length, with a
        /// 2-byte circuit id (tor-spec 4.1).
        VERSIONS = 7,
        /// Timestamp and addresses; ends the link handshake (tor-spec 4.5).
        NETINFO = 8,
        /// A relay cell allowed to carry EXTEND2; at most 8 per circuit (tor-spec 5.6).
        RELAY_EARLY = 9,
        /// Create a circuit with an extensible handshake: `htype | hlen | hdata` (tor-spec 5.1).
        CREATE2 = 10,
        /// The answer to CREATE2: `hlen | hdata`.
        CREATED2 = 11,
        /// Ask the peer to start or stop channel padding (padding-spec).
        PADDING_NEGOTIATE = 12,
        /// Variable-length padding, dropped by the receiver.
        VPADDING = 128,
        /// The sender's link and identity certificates (tor-spec 4.2).
        CERTS = 129,
        /// The responder's challenge to an initiator that wants to authenticate (tor-spec 4.3).
        AUTH_CHALLENGE = 130,
        /// The initiator's answer to AUTH_CHALLENGE (tor-spec 4.4).
        AUTHENTICATE = 131,
    }
}

impl ChanCmd {
    /// Whether cells with this command are variable-length: VERSIONS, and every command
    /// >= 128 (tor-spec: the rule holds for unknown commands too, so they can be skipped).
    pub fn is_var(self) -> bool {
        self == Self::VERSIONS || self.0 >= 128
    }
}

open_u8! {
    /// A relay cell command (tor-spec section 6.1).
    RelayCmd {
        /// Open a stream to `host:port` at the exit (tor-spec 6.2).
        BEGIN = 1,
        /// Stream bytes; the data is the payload itself.
        DATA = 2,
        /// Close a stream; the data starts with an [`EndReason`] (tor-spec 6.3).
        END = 3,
        /// The exit connected a stream (tor-spec 6.2).
        CONNECTED = 4,
        /// Flow control: the receiver may send another window of cells (tor-spec 7.4).
        SENDME = 5,
        /// Extend a circuit with TAP (obsolete; EXTEND2 replaced it).
        EXTEND = 6,
        /// The answer to EXTEND.
        EXTENDED = 7,
        /// Tear down the circuit after the receiving hop (tor-spec 5.4).
        TRUNCATE = 8,
        /// The circuit was cut after the sending hop; the data is a [`DestroyReason`].
        TRUNCATED = 9,
        /// Long-range padding, dropped by the hop it is addressed to.
        DROP = 10,
        /// Resolve a hostname at the exit (tor-spec 6.4).
        RESOLVE = 11,
        /// The answer to RESOLVE.
        RESOLVED = 12,
        /// Open a stream to the relay's directory port (tor-spec 6.2).
        BEGIN_DIR = 13,
        /// Extend the circuit by one hop: link specifiers and a CREATE2 handshake (tor-spec 5.1.2).
        EXTEND2 = 14,
        /// The answer to EXTEND2: the next hop's CREATED2 body.
        EXTENDED2 = 15,
    }
}

open_u8! {
    /// The reason in a DESTROY cell or a RELAY_TRUNCATED message (tor-spec section 5.4).
    DestroyReason {
        /// No reason given; tor-spec asks senders to use it always, to avoid side channels.
        NONE = 0,
        /// The peer broke the protocol.
        PROTOCOL = 1,
        /// An internal error at the sender.
        INTERNAL = 2,
        /// A client sent TRUNCATE.
        REQUESTED = 3,
        /// The relay is hibernating and takes no new circuits.
        HIBERNATING = 4,
        /// Out of memory, sockets or circuit ids.
        RESOURCELIMIT = 5,
        /// Could not connect to the next relay.
        CONNECTFAILED = 6,
        /// The next relay's identity did not match the one asked for.
        OR_IDENTITY = 7,
        /// The channel carrying the circuit closed.
        CHANNEL_CLOSED = 8,
        /// The circuit expired or was idle too long.
        FINISHED = 9,
        /// The circuit build timed out.
        TIMEOUT = 10,
        /// The circuit was destroyed without a client TRUNCATE.
        DESTROYED = 11,
    }
}

open_u8! {
    /// The reason in a RELAY_END message (tor-spec section 6.3).
    EndReason {
        /// Catch-all, and what an empty END payload means.
        MISC = 1,
        /// The exit could not resolve the hostname.
        RESOLVEFAILED = 2,
        /// The destination refused the connection.
        CONNECTREFUSED = 3,
        /// The exit policy forbids this destination.
        EXITPOLICY = 4,
        /// The circuit is being destroyed.
        DESTROY = 5,
        /// The stream closed normally.
        DONE = 6,
        /// The connection timed out.
        TIMEOUT = 7,
        /// No route to the destination.
        NOROUTE = 8,
        /// The relay is hibernating.
        HIBERNATING = 9,
        /// An internal error at the exit.
        INTERNAL = 10,
        /// Out of resources at the exit.
        RESOURCELIMIT = 11,
        /// The destination reset the connection.
        CONNRESET = 12,
        /// The other side broke the protocol.
        TORPROTOCOL = 13,
        /// BEGIN_DIR to a relay that serves no directory (tor-spec 6.2.1).
        NOTDIRECTORY = 14,
    }
}
