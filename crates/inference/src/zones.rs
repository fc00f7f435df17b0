//! Plane geometry on normalised frame coordinates (0..1, y down): whether a point lies in a polygon
//! (zones, motion masks) and on which side of a tripwire a path ends up (line crossings).

/// A point `(x, y)` in normalised frame coordinates.
pub type Point = (f32, f32);

/// Whether `p` lies inside the polygon (even-odd rule; points on an edge may fall either way). Corners
/// may be `(x, y)` tuples or `[x, y]` arrays, as stored, without conversion.
pub fn polygon_contains<P: Copy + Into<Point>>(polygon: &[P], p: Point) -> bool {
    if polygon.len() < 3 {
        return false;
    }
    let mut inside = false;
    let mut j = polygon.len() - 1;
    for i in 0..polygon.len() {
        let (xi, yi) = polygon[i].into();
        let (xj, yj) = polygon[j].into();
        if (yi > p.1) != (yj > p.1) && p.0 < (xj - xi) * (p.1 - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// Which way a path crossed a tripwire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossing {
    /// Onto the side where `(b - a) x (p - a) > 0`: for a wire drawn left to right, downwards in the
    /// image (usually towards the camera).
    In,
    /// The other way.
    Out,
}

fn cross(a: Point, b: Point, p: Point) -> f32 {
    (b.0 - a.0) * (p.1 - a.1) - (b.1 - a.1) * (p.0 - a.0)
}

/// How far `p` lies from the line through `a` and `b` (in the frame's normalised units), positive on the
/// side a crossing [`Crossing::In`] ends on.
pub fn signed_distance(a: Point, b: Point, p: Point) -> f32 {
    let length = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
    if length == 0.0 {
        0.0
    } else {
        cross(a, b, p) / length
    }
}

/// Whether the step `from -> to` crosses the segment `a - b`, and which way. A step that only touches
/// the wire does not cross it.
pub fn crossing(a: Point, b: Point, from: Point, to: Point) -> Option<Crossing> {
    let (s_from, s_to) = (cross(a, b, from), cross(a, b, to));
    if s_from == 0.0 || s_to == 0.0 || (s_from > 0.0) == (s_to > 0.0) {
        return None;
    }
    // The wire's end points must lie on opposite sides of the step, or the step passes beside it.
    let (s_a, s_b) = (cross(from, to, a), cross(from, to, b));
    if (s_a > 0.0) == (s_b > 0.0) && s_a != 0.0 && s_b != 0.0 {
        return None;
    }
    Some(if s_to > 0.0 {
        Crossing::In
    } else {
        Crossing::Out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polygon_membership() {
        let square = [(0.2, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6)];
        assert!(polygon_contains(&square, (0.4, 0.4)));
        assert!(!polygon_contains(&square, (0.7, 0.4)));
        assert!(!polygon_contains(&square[..2], (0.4, 0.4)));
        let l_shape = [
            (0.0, 0.0),
            (1.0, 0.0),
            (1.0, 0.3),
            (0.3, 0.3),
            (0.3, 1.0),
            (0.0, 1.0),
        ];
        assert!(polygon_contains(&l_shape, (0.1, 0.8)));
        assert!(!polygon_contains(&l_shape, (0.8, 0.8)));
    }

    #[test]
    fn crossings_have_a_direction_and_need_the_segment() {
        let (a, b) = ((0.0, 0.5), (1.0, 0.5));
        assert_eq!(crossing(a, b, (0.5, 0.4), (0.5, 0.6)), Some(Crossing::In));
        assert_eq!(crossing(a, b, (0.5, 0.6), (0.5, 0.4)), Some(Crossing::Out));
        assert_eq!(crossing(a, b, (0.5, 0.4), (0.6, 0.45)), None);
        // Beside a short wire: no crossing.
        assert_eq!(
            crossing((0.0, 0.5), (0.3, 0.5), (0.5, 0.4), (0.5, 0.6)),
            None
        );
    }
}
