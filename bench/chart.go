package main

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// panel is one chart of the figure: one metric of one scenario.
type panel struct {
	scen, metric, title, unit string
}

var panels = []panel{
	{"s1", "server CPU us/frame", "s1: 100 conns, 64 B, closed loop", "server CPU µs/frame (lower is better)"},
	{"s2", "server CPU us/frame", "s2: 100 conns, 64 B, pipeline 16", "server CPU µs/frame (lower is better)"},
	{"s3", "server CPU us/frame", "s3: 1,000 conns, 512 B, closed loop", "server CPU µs/frame (lower is better)"},
	{"s1", "kframes/s", "s1: throughput", "thousand frames/s (higher is better)"},
	{"s4", "MB/s", "s4: 4 conns, 64 KiB frames, streaming", "MB/s (higher is better)"},
	{"s5", "KiB/conn after echo", "s5: idle connections", "RSS KiB per connection (lower is better)"},
}

var implColors = map[string]color.Color{
	"mai":       color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	"mai-epoll": color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	"netpoll":   color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	"gnet":      color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	"nbio":      color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	"std":       color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
}

// implColor is impl's color; mai's servers at another revision (-against)
// get their current color, half transparent.
func implColor(impl string) color.Color {
	base, rev := splitRev(impl)
	c, ok := implColors[base]
	if !ok {
		return color.Black
	}
	if rev != "" {
		r, g, b, _ := c.RGBA()
		return color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: 0x70}
	}
	return c
}

// rangeBars are min-max whiskers around each bar's median.
type rangeBars struct {
	x, y, lo, hi []float64
}

func (r rangeBars) Len() int                        { return len(r.x) }
func (r rangeBars) XY(i int) (float64, float64)     { return r.x[i], r.y[i] }
func (r rangeBars) YError(i int) (float64, float64) { return r.y[i] - r.lo[i], r.hi[i] - r.y[i] }

// chart draws one bar chart per panel whose scenario ran, in a grid, into a
// PNG file: medians as bars, min-max as whiskers.
func (rep *Report) chart(path string) error {
	var plots []*plot.Plot
	for _, pn := range panels {
		row := rep.row(pn.scen, pn.metric)
		if row == nil {
			continue
		}
		p := plot.New()
		p.Title.Text = pn.title
		p.Y.Label.Text = pn.unit
		p.Y.Min = 0
		var names []string
		var rb rangeBars
		for i, impl := range rep.Config.Impls {
			names = append(names, impl)
			c, ok := row.Cells[impl]
			if !ok {
				continue
			}
			bar, err := plotter.NewBarChart(plotter.Values{c.Median}, vg.Points(28))
			if err != nil {
				return err
			}
			bar.XMin = float64(i)
			bar.Color = implColor(impl)
			bar.LineStyle.Width = 0
			p.Add(bar)
			rb.x = append(rb.x, float64(i))
			rb.y = append(rb.y, c.Median)
			rb.lo = append(rb.lo, c.Min)
			rb.hi = append(rb.hi, c.Max)
		}
		if rb.Len() > 0 {
			eb, err := plotter.NewYErrorBars(rb)
			if err != nil {
				return err
			}
			eb.LineStyle.Width = vg.Points(1)
			p.Add(eb)
		}
		p.NominalX(names...)
		p.Y.Max *= 1.08 // room above the tallest whisker
		plots = append(plots, p)
	}
	if len(plots) == 0 {
		return fmt.Errorf("nothing to draw")
	}
	const cols = 3
	rows := (len(plots) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
	}
	for i, p := range plots {
		grid[i/cols][i%cols] = p
	}
	img := vgimg.NewWith(vgimg.UseWH(vg.Points(1200), vg.Points(float64(330*rows)+30)), vgimg.UseDPI(96))
	dc := draw.New(img)
	// A title over the grid.
	disturbed, load := 0, 0
	for _, r := range rep.Runs {
		if r.Load != nil {
			load++
			if r.Disturbed {
				disturbed++
			}
		}
	}
	title := fmt.Sprintf("mai vs peers, echo server on 1 core (%s, %s); bars: median of %d, whiskers: min-max; %d of %d load runs disturbed by other work",
		rep.Machine.CPUModel, rep.Date, rep.Config.Rounds, disturbed, load)
	sty := plot.New().Title.TextStyle
	dc.FillText(sty, vg.Point{X: dc.Center().X, Y: dc.Max.Y - vg.Points(16)}, title)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadTop: vg.Points(40), PadX: vg.Points(18), PadY: vg.Points(18),
		PadLeft: vg.Points(6), PadRight: vg.Points(6), PadBottom: vg.Points(6)}
	canvases := plot.Align(grid, tiles, dc)
	for j := range grid {
		for i, p := range grid[j] {
			if p != nil {
				p.Draw(canvases[j][i])
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (rep *Report) row(scen, metric string) *Row {
	for i := range rep.Rows {
		if rep.Rows[i].Scenario == scen && rep.Rows[i].Metric == metric {
			return &rep.Rows[i]
		}
	}
	return nil
}
