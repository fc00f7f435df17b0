//! `crow cameras`: zones (mapped to products), tripwires and motion masks per camera.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use crow::proto::camera_service_client::CameraServiceClient;
use crow::proto::{self, DeleteCameraRequest, GetCameraRequest, ListCamerasRequest};
use crow::storage::{LineConfig, ZoneConfig};
use serde::Deserialize;

use crate::records::channel;
use crate::ServerArg;

#[derive(Subcommand)]
pub(crate) enum CamerasCommand {
    /// Create or replace a camera's configuration, from a JSON file and/or flags. Coordinates are
    /// normalised to the frame (0..1, y down); a person is in a zone when their feet are.
    ///
    /// Example: crow cameras set --org acme --camera shop-1
    ///   --zone "shelf-3:0.1,0.5 0.4,0.5 0.4,0.9 0.1,0.9:sku-101,sku-102" --line "door:0.5,0 0.5,1"
    Set {
        /// Organization id.
        #[arg(long)]
        org: String,
        /// Camera id.
        #[arg(long)]
        camera: String,
        /// JSON file: {"zones": [{"id", "polygon": [[x, y], ...], "product_ids": [...],
        /// "min_dwell_ms"}], "lines": [{"id", "a": [x, y], "b": [x, y]}], "masks": [[[x, y], ...]],
        /// "detector_input": [width, height], "detector_tiles": [columns, rows]}.
        file: Option<PathBuf>,
        /// A zone: "ID:x,y x,y x,y[:PRODUCT,PRODUCT[:MIN_DWELL_MS]]" (repeatable).
        #[arg(long = "zone")]
        zones: Vec<String>,
        /// A tripwire: "ID:x,y x,y" (repeatable); crossing it to the left of a -> b counts "in".
        #[arg(long = "line")]
        lines: Vec<String>,
        /// A region whose detections are ignored: "x,y x,y x,y ..." (repeatable).
        #[arg(long = "mask")]
        masks: Vec<String>,
        /// The person detector's input for this camera, WIDTHxHEIGHT pixels (e.g. 640x480 for a wide
        /// view whose people are 60-130 px tall); default: the server's perception.detector_input.
        #[arg(long, value_parser = crate::parse_size)]
        detector_input: Option<[u32; 2]>,
        /// Overlapping tiles the detector also looks at for this camera, COLUMNSxROWS (e.g. 2x2: five
        /// detector calls per frame, more small and partly hidden people found); default: the
        /// server's perception.detector_tiles.
        #[arg(long, value_parser = crate::parse_size)]
        detector_tiles: Option<[u32; 2]>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Print a camera's configuration as JSON.
    Get {
        /// Organization id.
        #[arg(long)]
        org: String,
        /// Camera id.
        #[arg(long)]
        camera: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List the organization's configured cameras.
    List {
        /// Organization id.
        #[arg(long)]
        org: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Remove a camera's configuration.
    Delete {
        /// Organization id.
        #[arg(long)]
        org: String,
        /// Camera id.
        #[arg(long)]
        camera: String,
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CameraFile {
    #[serde(default)]
    zones: Vec<ZoneConfig>,
    #[serde(default)]
    lines: Vec<LineConfig>,
    #[serde(default)]
    masks: Vec<Vec<[f32; 2]>>,
    #[serde(default)]
    detector_input: Option<[u32; 2]>,
    #[serde(default)]
    detector_tiles: Option<[u32; 2]>,
}

fn points(text: &str, what: &str) -> Result<Vec<[f32; 2]>> {
    text.split_whitespace()
        .map(|p| {
            let (x, y) = p
                .split_once(',')
                .with_context(|| format!("{what}: {p:?} is not x,y"))?;
            Ok([
                x.trim()
                    .parse()
                    .with_context(|| format!("{what}: bad x in {p:?}"))?,
                y.trim()
                    .parse()
                    .with_context(|| format!("{what}: bad y in {p:?}"))?,
            ])
        })
        .collect()
}

fn zone(spec: &str) -> Result<ZoneConfig> {
    let mut parts = spec.split(':');
    let (Some(id), Some(polygon)) = (parts.next(), parts.next()) else {
        bail!("--zone {spec:?}: expected ID:x,y x,y x,y[:PRODUCTS[:MIN_DWELL_MS]]");
    };
    let product_ids = parts
        .next()
        .map(|p| {
            p.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let min_dwell_ms = match parts.next() {
        Some(ms) => ms
            .parse()
            .with_context(|| format!("--zone {spec:?}: bad MIN_DWELL_MS"))?,
        None => crow::storage::default_min_dwell_ms(),
    };
    Ok(ZoneConfig {
        id: id.to_owned(),
        polygon: points(polygon, "--zone")?,
        product_ids,
        min_dwell_ms,
    })
}

fn line(spec: &str) -> Result<LineConfig> {
    let Some((id, ends)) = spec.split_once(':') else {
        bail!("--line {spec:?}: expected ID:x,y x,y");
    };
    let ends = points(ends, "--line")?;
    let [a, b] = ends[..] else {
        bail!("--line {spec:?}: a tripwire has two ends");
    };
    Ok(LineConfig {
        id: id.to_owned(),
        a,
        b,
    })
}

fn pt(p: [f32; 2]) -> proto::Point {
    proto::Point { x: p[0], y: p[1] }
}

fn to_proto(org: &str, camera: &str, c: CameraFile) -> proto::Camera {
    proto::Camera {
        organization_id: org.to_owned(),
        camera_id: camera.to_owned(),
        zones: c
            .zones
            .into_iter()
            .map(|z| proto::Zone {
                id: z.id,
                polygon: z.polygon.into_iter().map(pt).collect(),
                product_ids: z.product_ids,
                min_dwell_ms: z.min_dwell_ms,
            })
            .collect(),
        lines: c
            .lines
            .into_iter()
            .map(|l| proto::Tripwire {
                id: l.id,
                a: Some(pt(l.a)),
                b: Some(pt(l.b)),
            })
            .collect(),
        masks: c
            .masks
            .into_iter()
            .map(|m| proto::Mask {
                polygon: m.into_iter().map(pt).collect(),
            })
            .collect(),
        detector_input: c
            .detector_input
            .map(|[width, height]| proto::DetectorInput { width, height }),
        detector_tiles: c
            .detector_tiles
            .map(|[columns, rows]| proto::DetectorTiles { columns, rows }),
        updated_at_ms: 0,
    }
}

fn to_json(c: &proto::Camera) -> serde_json::Value {
    let p = |p: &Option<proto::Point>| p.as_ref().map(|p| [p.x, p.y]);
    serde_json::json!({
        "organization_id": c.organization_id,
        "camera_id": c.camera_id,
        "zones": c.zones.iter().map(|z| serde_json::json!({
            "id": z.id,
            "polygon": z.polygon.iter().map(|p| [p.x, p.y]).collect::<Vec<_>>(),
            "product_ids": z.product_ids,
            "min_dwell_ms": z.min_dwell_ms,
        })).collect::<Vec<_>>(),
        "lines": c.lines.iter().map(|l| serde_json::json!({"id": l.id, "a": p(&l.a), "b": p(&l.b)}))
            .collect::<Vec<_>>(),
        "masks": c.masks.iter().map(|m| m.polygon.iter().map(|p| [p.x, p.y]).collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        "detector_input": c.detector_input.map(|d| [d.width, d.height]),
        "detector_tiles": c.detector_tiles.map(|t| [t.columns, t.rows]),
        "updated_at_ms": c.updated_at_ms,
    })
}

pub(crate) async fn cameras(cmd: CamerasCommand) -> Result<()> {
    match cmd {
        CamerasCommand::Set {
            org,
            camera,
            file,
            zones,
            lines,
            masks,
            detector_input,
            detector_tiles,
            server,
        } => {
            let mut config = match &file {
                Some(f) => {
                    let text = std::fs::read_to_string(f)
                        .with_context(|| format!("reading {}", f.display()))?;
                    serde_json::from_str(&text).with_context(|| {
                        format!(
                            "{}: expected {{\"zones\", \"lines\", \"masks\", \"detector_input\", \"detector_tiles\"}}",
                            f.display()
                        )
                    })?
                }
                None => CameraFile::default(),
            };
            for z in &zones {
                config.zones.push(zone(z)?);
            }
            for l in &lines {
                config.lines.push(line(l)?);
            }
            for m in &masks {
                config.masks.push(points(m, "--mask")?);
            }
            if detector_input.is_some() {
                config.detector_input = detector_input;
            }
            if detector_tiles.is_some() {
                config.detector_tiles = detector_tiles;
            }
            let mut client = CameraServiceClient::new(channel(&server).await?);
            let stored = client
                .upsert_camera(to_proto(&org, &camera, config))
                .await?
                .into_inner();
            let input = stored.detector_input.map_or_else(
                || "the server's detector input".to_owned(),
                |d| format!("detector input {}x{}", d.width, d.height),
            );
            let input = match stored.detector_tiles {
                Some(t) => format!("{input} and {}x{} tiles", t.columns, t.rows),
                None => format!("{input} and tiles"),
            };
            println!(
                "camera {camera} of {org}: {} zones, {} tripwires, {} masks, {input}",
                stored.zones.len(),
                stored.lines.len(),
                stored.masks.len()
            );
            Ok(())
        }
        CamerasCommand::Get {
            org,
            camera,
            server,
        } => {
            let mut client = CameraServiceClient::new(channel(&server).await?);
            let c = client
                .get_camera(GetCameraRequest {
                    organization_id: org,
                    camera_id: camera,
                })
                .await?
                .into_inner();
            println!("{}", serde_json::to_string_pretty(&to_json(&c))?);
            Ok(())
        }
        CamerasCommand::List { org, server } => {
            let mut client = CameraServiceClient::new(channel(&server).await?);
            let mut token = String::new();
            loop {
                let page = client
                    .list_cameras(ListCamerasRequest {
                        organization_id: org.clone(),
                        page_size: 100,
                        page_token: token,
                    })
                    .await?
                    .into_inner();
                for c in &page.cameras {
                    let products: Vec<&str> = c
                        .zones
                        .iter()
                        .flat_map(|z| z.product_ids.iter().map(String::as_str))
                        .collect();
                    println!(
                        "{:<24} {} zones, {} tripwires, {} masks; products: {}",
                        c.camera_id,
                        c.zones.len(),
                        c.lines.len(),
                        c.masks.len(),
                        if products.is_empty() {
                            "-".to_owned()
                        } else {
                            products.join(", ")
                        }
                    );
                }
                token = page.next_page_token;
                if token.is_empty() {
                    return Ok(());
                }
            }
        }
        CamerasCommand::Delete {
            org,
            camera,
            server,
        } => {
            let mut client = CameraServiceClient::new(channel(&server).await?);
            let r = client
                .delete_camera(DeleteCameraRequest {
                    organization_id: org,
                    camera_id: camera.clone(),
                })
                .await?
                .into_inner();
            println!(
                "{}",
                if r.deleted {
                    format!("camera {camera}: configuration removed")
                } else {
                    format!("camera {camera} had no configuration")
                }
            );
            Ok(())
        }
    }
}
