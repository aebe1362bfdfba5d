// vega re-exports vega-scenegraph's `textMetrics` at runtime (vega-scenegraph: "User defined textMetrics.width
// function in use"), but vega-typings does not declare it. reports/charts.ts replaces `width` with a CJK-aware
// estimate.
export {};

declare module 'vega' {
  export const textMetrics: {
    width: (item: any, text?: unknown) => number;
    height: (item: any) => number;
  };
}
