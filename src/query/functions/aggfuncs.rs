//! graphite-web's aggregation functions (`getAggFunc`): what `aggregate`, the `*Series`
//! combiners, `groupByNode` callbacks, `summarize` and the moving windows apply to a row or a
//! bucket of values.
