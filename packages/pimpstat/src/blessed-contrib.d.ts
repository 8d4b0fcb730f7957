// The part of blessed-contrib 4.11 pimpstat uses. The package ships no types and
// @types/blessed-contrib is not installed; this covers exactly what tui.ts calls.
declare module 'blessed-contrib' {
  import type { Widgets } from 'blessed';

  namespace contrib {
    interface LineSeries {
      title: string;
      x: string[];
      y: number[];
      style?: { line?: string };
    }
    interface LineOptions extends Widgets.BoxOptions {
      showLegend?: boolean;
      legend?: { width?: number };
      /** Colours of the axis text, default line colour and baseline. */
      style?: Widgets.Types.TStyle & { line?: string; text?: string; baseline?: string };
      wholeNumbersOnly?: boolean;
      minY?: number;
      /** Fixed top of the y axis; read on every setData(). */
      maxY?: number;
      xLabelPadding?: number;
      xPadding?: number;
      numYLabels?: number;
      abbreviate?: boolean;
    }
    interface LineElement extends Widgets.BoxElement {
      options: LineOptions;
      setData(series: LineSeries[]): void;
    }
    interface GaugeOptions extends Widgets.BoxOptions {
      stroke?: string;
      fill?: string;
      /** 0..1 (values up to 1.001 are taken as a fraction, above as a percentage). */
      percent?: number;
      showLabel?: boolean;
    }
    interface GaugeElement extends Widgets.BoxElement {
      setPercent(percent: number): void;
    }
  }

  const contrib: {
    line(options: contrib.LineOptions): contrib.LineElement;
    gauge(options: contrib.GaugeOptions): contrib.GaugeElement;
  };
  export = contrib;
}
