//! Host bindings of every interface version the host links. `v0_3` is the current `omni:cpi`
//! (`wit/`); `v0_2` (`wit/0.2.0/`) and `v0_1` (`wit/0.1.0/`) are frozen, kept so components built
//! against them load and work unchanged. Within a version the director world reuses the container
//! world's shared interfaces, and the older versions reuse 0.3.0's `types` (their records are
//! identical; 0.3.0 only added `network-request`), so the host converts only the `process` and
//! `log` records between versions.

pub mod v0_3 {
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

pub mod v0_2 {
    pub mod container {
        wasmtime::component::bindgen!({
            path: "../wit/0.2.0",
            world: "container-cpi",
            imports: { default: async | trappable },
            exports: { default: async },
            with: {
                "omni:cpi/types": crate::wasm::bindings::v0_3::types,
            },
        });
    }

    pub mod director {
        wasmtime::component::bindgen!({
            path: "../wit/0.2.0",
            world: "director-cpi",
            imports: { default: async | trappable },
            exports: { default: async },
            with: {
                "omni:cpi/types": crate::wasm::bindings::v0_3::types,
                "omni:cpi/process": super::container::omni::cpi::process,
                "omni:cpi/log": super::container::omni::cpi::log,
                "omni:cpi/settings": super::container::omni::cpi::settings,
            },
        });
    }

    pub use container::omni::cpi::{log, process, settings};
}

pub mod v0_1 {
    pub mod container {
        wasmtime::component::bindgen!({
            path: "../wit/0.1.0",
            world: "container-cpi",
            imports: { default: async | trappable },
            exports: { default: async },
            with: {
                "omni:cpi/types": crate::wasm::bindings::v0_3::types,
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
                "omni:cpi/types": crate::wasm::bindings::v0_3::types,
                "omni:cpi/process": super::container::omni::cpi::process,
                "omni:cpi/log": super::container::omni::cpi::log,
            },
        });
    }

    pub use container::omni::cpi::{log, process};
}

/// The data types, the same in every version.
pub use v0_3::types;
