//! Host bindings of every interface version the host links. `v0_2` is the current `omni:cpi`
//! (`wit/`); `v0_1` is the frozen `omni:cpi@0.1.0` (`wit/0.1.0/`), kept so components built
//! against it load and work unchanged. Within a version the director world reuses the container
//! world's shared interfaces, and 0.1.0 reuses 0.2.0's `types` (the records are identical), so
//! the host converts only the `process` records between versions.

pub mod v0_2 {
    pub mod container {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "container-cpi",
            imports: { default: async | trappable },
            exports: { default: async },
        });
    }

    pub mod director {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "director-cpi",
            imports: { default: async | trappable },
            exports: { default: async },
            with: {
                "omni:cpi/types": super::container::omni::cpi::types,
                "omni:cpi/process": super::container::omni::cpi::process,
                "omni:cpi/log": super::container::omni::cpi::log,
                "omni:cpi/settings": super::container::omni::cpi::settings,
            },
        });
    }

    pub use container::omni::cpi::{log, process, settings, types};
}

pub mod v0_1 {
    pub mod container {
        wasmtime::component::bindgen!({
            path: "../wit/0.1.0",
            world: "container-cpi",
            imports: { default: async | trappable },
            exports: { default: async },
            with: {
                "omni:cpi/types": crate::wasm::bindings::v0_2::types,
            },
        });
    }

    pub mod director {
        wasmtime::component::bindgen!({
            path: "../wit/0.1.0",
            world: "director-cpi",
            imports: { default: async | trappable },
            exports: { default: async },
            with: {
                "omni:cpi/types": crate::wasm::bindings::v0_2::types,
                "omni:cpi/process": super::container::omni::cpi::process,
                "omni:cpi/log": super::container::omni::cpi::log,
            },
        });
    }

    pub use container::omni::cpi::{log, process};
}

/// The data types, the same in every version.
pub use v0_2::types;
