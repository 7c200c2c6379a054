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
        pub struct $name(pub u8);

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
        PADDING = 0,
        CREATE = 1,
        CREATED = 2,
        RELAY = 3,
        DESTROY = 4,
        CREATE_FAST = 5,
        CREATED_FAST = 6,
        VERSIONS = 7,
        NETINFO = 8,
        RELAY_EARLY = 9,
        CREATE2 = 10,
        CREATED2 = 11,
        PADDING_NEGOTIATE = 12,
        VPADDING = 128,
        CERTS = 129,
        AUTH_CHALLENGE = 130,
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
        BEGIN = 1,
        DATA = 2,
        END = 3,
        CONNECTED = 4,
        SENDME = 5,
        EXTEND = 6,
        EXTENDED = 7,
        TRUNCATE = 8,
        TRUNCATED = 9,
        DROP = 10,
        RESOLVE = 11,
        RESOLVED = 12,
        BEGIN_DIR = 13,
        EXTEND2 = 14,
        EXTENDED2 = 15,
    }
}

open_u8! {
    /// The reason in a DESTROY cell or a RELAY_TRUNCATED message (tor-spec section 5.4).
    DestroyReason {
        NONE = 0,
        PROTOCOL = 1,
        INTERNAL = 2,
        REQUESTED = 3,
        HIBERNATING = 4,
        RESOURCELIMIT = 5,
        CONNECTFAILED = 6,
        OR_IDENTITY = 7,
        CHANNEL_CLOSED = 8,
        FINISHED = 9,
        TIMEOUT = 10,
        DESTROYED = 11,
    }
}

open_u8! {
    /// The reason in a RELAY_END message (tor-spec section 6.3).
    EndReason {
        MISC = 1,
        RESOLVEFAILED = 2,
        CONNECTREFUSED = 3,
        EXITPOLICY = 4,
        DESTROY = 5,
        DONE = 6,
        TIMEOUT = 7,
        NOROUTE = 8,
        HIBERNATING = 9,
        INTERNAL = 10,
        RESOURCELIMIT = 11,
        CONNRESET = 12,
        TORPROTOCOL = 13,
    }
}
