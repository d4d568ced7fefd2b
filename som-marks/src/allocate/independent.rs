//! `independent` mode: each mark at a pixel of maximal exact distance to the
//! outside of its own mask, as the released SoM code places them.

use som_core::{LabelMeasure, Mark, Placement, Segmentation, SomError};

use super::{label_box, mask_peak, par_with_edt, AllocatorConfig, Unit};

/// Marks for `units` (already in rank order), regions in parallel.
pub(crate) fn allocate(
    seg: &Segmentation,
    units: &[Unit<'_>],
    config: &AllocatorConfig,
    labels: &dyn LabelMeasure,
) -> Result<Vec<Mark>, SomError> {
    let peaks = par_with_edt(units, |u, edt| {
        mask_peak(&u.mask, edt)?.ok_or_else(|| SomError::Region {
            id: seg.regions()[u.region].id,
            message: "empty mask: there is no pixel to put a mark on".into(),
        })
    })?;
    let mut marks = Vec::with_capacity(units.len());
    for (u, (anchor, d2)) in units.iter().zip(peaks) {
        let text = config.labels.text(u.rank);
        let size = labels.label_size(&text, seg.size(), 1.0);
        marks.push(Mark {
            id: config.labels.id(u.rank),
            label_box: label_box(anchor, size, seg.size()),
            text,
            anchor,
            region: u.region,
            placement: Placement::Inside,
            distance: (d2 as f64).sqrt(),
            overlaps: Vec::new(),
        });
    }
    Ok(marks)
}
