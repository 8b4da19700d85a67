//! What [`SimpleQueue`](crate::SimpleQueue) and [`JoinableQueue`](crate::JoinableQueue) share
//! as newtypes over a [`Queue`](crate::Queue): cloning, `Debug`, and travelling between
//! processes as the queue underneath.

/// `Clone`, `Debug` (named after the wrapper) and serde's traits for `$name<T>(Queue<T>)`,
/// each forwarded to the queue.
macro_rules! queue_wrapper {
    ($name:ident) => {
        impl<T> Clone for $name<T> {
            fn clone(&self) -> Self {
                $name(self.0.clone())
            }
        }

        impl<T> std::fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.0).finish()
            }
        }

        impl<T> serde::Serialize for $name<T> {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                serde::Serialize::serialize(&self.0, s)
            }
        }

        impl<'de, T: serde::Serialize + serde::de::DeserializeOwned> serde::Deserialize<'de>
            for $name<T>
        {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                <$crate::Queue<T> as serde::Deserialize<'de>>::deserialize(d).map($name)
            }
        }
    };
}

pub(crate) use queue_wrapper;
