//! Camera shapes: points, zones, tripwires and masks, a camera's configuration, and a page of cameras.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::time::format_optional_ms;
use crate::proto;

/// A point in normalised frame coordinates (0..1 of width and height, y down).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

fn point(p: Option<proto::Point>) -> Point {
    let p = p.unwrap_or_default();
    Point { x: p.x, y: p.y }
}

fn polygon(points: Vec<proto::Point>) -> Vec<Point> {
    points.into_iter().map(|p| point(Some(p))).collect()
}

fn proto_polygon(points: Vec<Point>) -> Vec<proto::Point> {
    points
        .into_iter()
        .map(|p| proto::Point { x: p.x, y: p.y })
        .collect()
}

/// A zone: a polygon, optionally mapped to catalog products (a person whose feet stay in it for
/// `minDwellMs` interacts with them).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Zone {
    pub id: String,
    /// 3..=64 corners.
    pub polygon: Vec<Point>,
    #[serde(default)]
    pub product_ids: Vec<String>,
    /// 0 (or absent) means 3000.
    #[serde(default)]
    pub min_dwell_ms: u64,
}

/// A tripwire: crossings from a->b's left to its right count "in".
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tripwire {
    pub id: String,
    pub a: Point,
    pub b: Point,
}

/// A region whose detections are ignored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Mask {
    pub polygon: Vec<Point>,
}

/// A camera's zones, tripwires and masks, as stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Camera {
    pub organization_id: String,
    pub camera_id: String,
    pub zones: Vec<Zone>,
    pub lines: Vec<Tripwire>,
    pub masks: Vec<Mask>,
    /// This camera's detector input; absent: the server's `perception.detector_input`.
    pub detector_input: Option<DetectorInput>,
    /// This camera's detector tiles; absent: the server's `perception.detector_tiles`.
    pub detector_tiles: Option<DetectorTiles>,
    /// Last upsert.
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
}

/// A camera's configuration to create or replace (the camera is the path's): at most 32 of each.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CameraConfig {
    #[serde(default)]
    pub zones: Vec<Zone>,
    #[serde(default)]
    pub lines: Vec<Tripwire>,
    #[serde(default)]
    pub masks: Vec<Mask>,
    /// Pixels this camera's frames are resized to for the person detector (32..=4096 each); absent:
    /// the server's `perception.detector_input`.
    #[serde(default)]
    pub detector_input: Option<DetectorInput>,
    /// Overlapping tiles the detector also looks at for this camera (1..=4 each); absent: the
    /// server's `perception.detector_tiles`.
    #[serde(default)]
    pub detector_tiles: Option<DetectorTiles>,
}

/// Overlapping tiles the person detector also looks at, besides the whole frame, each resized to the
/// detector's input on its own: smaller people are found, at one detector call per tile more.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectorTiles {
    /// 1..=4.
    pub columns: u32,
    /// 1..=4.
    pub rows: u32,
}

/// The size frames are resized to for the person detector: larger finds smaller people and costs about
/// the ratio of pixels more.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectorInput {
    /// Pixels, 32..=4096.
    pub width: u32,
    /// Pixels, 32..=4096.
    pub height: u32,
}

impl From<proto::Camera> for Camera {
    fn from(c: proto::Camera) -> Camera {
        Camera {
            organization_id: c.organization_id,
            camera_id: c.camera_id,
            zones: c
                .zones
                .into_iter()
                .map(|z| Zone {
                    id: z.id,
                    polygon: polygon(z.polygon),
                    product_ids: z.product_ids,
                    min_dwell_ms: z.min_dwell_ms,
                })
                .collect(),
            lines: c
                .lines
                .into_iter()
                .map(|l| Tripwire {
                    id: l.id,
                    a: point(l.a),
                    b: point(l.b),
                })
                .collect(),
            masks: c
                .masks
                .into_iter()
                .map(|m| Mask {
                    polygon: polygon(m.polygon),
                })
                .collect(),
            detector_input: c.detector_input.map(|d| DetectorInput {
                width: d.width,
                height: d.height,
            }),
            detector_tiles: c.detector_tiles.map(|t| DetectorTiles {
                columns: t.columns,
                rows: t.rows,
            }),
            updated_at: format_optional_ms(c.updated_at_ms),
        }
    }
}

impl CameraConfig {
    /// The protocol message for the camera of the path.
    pub fn proto(self, organization_id: &str, camera_id: &str) -> proto::Camera {
        proto::Camera {
            organization_id: organization_id.to_owned(),
            camera_id: camera_id.to_owned(),
            zones: self
                .zones
                .into_iter()
                .map(|z| proto::Zone {
                    id: z.id,
                    polygon: proto_polygon(z.polygon),
                    product_ids: z.product_ids,
                    min_dwell_ms: z.min_dwell_ms,
                })
                .collect(),
            lines: self
                .lines
                .into_iter()
                .map(|l| proto::Tripwire {
                    id: l.id,
                    a: Some(proto::Point { x: l.a.x, y: l.a.y }),
                    b: Some(proto::Point { x: l.b.x, y: l.b.y }),
                })
                .collect(),
            masks: self
                .masks
                .into_iter()
                .map(|m| proto::Mask {
                    polygon: proto_polygon(m.polygon),
                })
                .collect(),
            detector_input: self.detector_input.map(|d| proto::DetectorInput {
                width: d.width,
                height: d.height,
            }),
            detector_tiles: self.detector_tiles.map(|t| proto::DetectorTiles {
                columns: t.columns,
                rows: t.rows,
            }),
            updated_at_ms: 0,
        }
    }
}

/// A page of cameras.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CameraPage {
    pub cameras: Vec<Camera>,
    pub next_page_token: Option<String>,
}
