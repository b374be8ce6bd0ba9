package main

import (
	"fmt"
	"math"
	"strings"
)

// fleetSVG draws each storm's timeline: generations committed and issuer
// refresh calls as step lines over the refresh-in-flight windows, and,
// below, the latency the probe callers saw per 100ms (p50, p99, max) on a
// log scale.
func fleetSVG(tls []*stormTimeline) string {
	const (
		width   = 960.0
		left    = 70.0
		right   = 20.0
		stepH   = 150.0
		latH    = 200.0
		gap     = 40.0
		titleH  = 30.0
		legendH = 24.0
	)
	blockH := titleH + stepH + gap + latH + legendH + 50
	height := 10 + blockH*float64(len(tls))
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	w(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	plotW := width - left - right
	for i, tl := range tls {
		top := 10 + blockH*float64(i)
		end := math.Max(1, math.Ceil(tl.End))
		x := func(s float64) float64 { return left + plotW*math.Max(0, math.Min(s, end))/end }
		name := map[string]string{"file": "file backend", "awssm": "AWS Secrets Manager (moto)"}[tl.Backend]
		w(`<text x="%.0f" y="%.0f" font-size="14" font-weight="bold">Fleet storm, %s: %d issuer refreshes, %d commits</text>`+"\n", left, top+18, name, len(tl.Issuer), len(tl.Committed))

		// Step panel.
		y0 := top + titleH
		maxN := math.Max(1, float64(max(len(tl.Issuer), len(tl.Committed))))
		y := func(n float64) float64 { return y0 + stepH - stepH*n/maxN }
		w(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#999"/>`+"\n", left, y0, plotW, stepH)
		for _, win := range tl.Windows {
			x0, x1 := x(win[0]), x(win[1])
			w(`<rect x="%.2f" y="%.1f" width="%.2f" height="%.1f" fill="#f4c7c3" opacity="0.8"/>`+"\n", x0, y0, math.Max(1, x1-x0), stepH)
		}
		for n := 0.0; n <= maxN; n += math.Max(1, math.Round(maxN/5)) {
			w(`<text x="%.1f" y="%.1f" text-anchor="end">%.0f</text>`+"\n", left-6, y(n)+4, n)
			w(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", left, left+plotW, y(n), y(n))
		}
		w(`<text x="%.1f" y="%.1f" transform="rotate(-90 %.1f %.1f)" text-anchor="middle">count</text>`+"\n", left-40, y0+stepH/2, left-40, y0+stepH/2)
		w(`<path d="%s" fill="none" stroke="#1a73e8" stroke-width="2"/>`+"\n", stepPath(tl.Committed, end, x, y))
		w(`<path d="%s" fill="none" stroke="#e37400" stroke-width="2" stroke-dasharray="5 4"/>`+"\n", stepPath(tl.Issuer, end, x, y))
		timeAxis(&b, end, x, y0+stepH)

		// Latency panel, log scale.
		ly0 := y0 + stepH + gap
		lo, hi := 0.1, 10.0
		for _, bk := range tl.Buckets {
			hi = math.Max(hi, bk.MaxUs)
		}
		hi = math.Pow(10, math.Ceil(math.Log10(hi)))
		ly := func(us float64) float64 {
			us = math.Max(lo, us)
			return ly0 + latH - latH*math.Log10(us/lo)/math.Log10(hi/lo)
		}
		w(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#999"/>`+"\n", left, ly0, plotW, latH)
		for _, win := range tl.Windows {
			x0, x1 := x(win[0]), x(win[1])
			w(`<rect x="%.2f" y="%.1f" width="%.2f" height="%.1f" fill="#f4c7c3" opacity="0.8"/>`+"\n", x0, ly0, math.Max(1, x1-x0), latH)
		}
		for us := lo; us <= hi*1.001; us *= 10 {
			w(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", left, left+plotW, ly(us), ly(us))
			w(`<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, ly(us)+4, usLabel(us))
		}
		w(`<text x="%.1f" y="%.1f" transform="rotate(-90 %.1f %.1f)" text-anchor="middle">call latency</text>`+"\n", left-48, ly0+latH/2, left-48, ly0+latH/2)
		var p50, p99 strings.Builder
		for j, bk := range tl.Buckets {
			cmd := "L"
			if j == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&p50, "%s%.1f %.1f ", cmd, x(bk.At+0.05), ly(bk.P50Us))
			fmt.Fprintf(&p99, "%s%.1f %.1f ", cmd, x(bk.At+0.05), ly(bk.P99Us))
		}
		w(`<path d="%s" fill="none" stroke="#34a853" stroke-width="1"/>`+"\n", p50.String())
		w(`<path d="%s" fill="none" stroke="#1a73e8" stroke-width="1"/>`+"\n", p99.String())
		for _, bk := range tl.Buckets {
			color := "#777"
			if bk.HasInFlight {
				color = "#d93025"
			}
			w(`<circle cx="%.1f" cy="%.1f" r="1.6" fill="%s"/>`+"\n", x(bk.At+0.05), ly(bk.MaxUs), color)
		}
		timeAxis(&b, end, x, ly0+latH)

		// Legend, two rows.
		ly1 := ly0 + latH + 36
		items := []struct{ color, dash, label string }{
			{"#1a73e8", "", "generations committed (top); p99 per 100 ms (bottom)"},
			{"#e37400", "5 4", "issuer refresh calls"},
			{"#34a853", "", "p50 per 100 ms"},
		}
		lx := left
		for _, it := range items {
			w(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`+"\n", lx, lx+24, ly1, ly1, it.color, it.dash)
			w(`<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+30, ly1+4, it.label)
			lx += 50 + 6*float64(len(it.label))
		}
		ly2 := ly1 + 18
		w(`<rect x="%.1f" y="%.1f" width="24" height="10" fill="#f4c7c3"/><text x="%.1f" y="%.1f">refresh in flight (claim to commit)</text>`+"\n", left, ly2-5, left+30, ly2+4)
		lx = left + 260
		w(`<circle cx="%.1f" cy="%.1f" r="3" fill="#777"/><text x="%.1f" y="%.1f">max per 100 ms</text>`+"\n", lx, ly2, lx+8, ly2+4)
		lx += 120
		w(`<circle cx="%.1f" cy="%.1f" r="3" fill="#d93025"/><text x="%.1f" y="%.1f">max per 100 ms, slice overlaps a refresh in flight</text>`+"\n", lx, ly2, lx+8, ly2+4)
	}
	w("</svg>\n")
	return b.String()
}

// stepPath draws a cumulative count that steps up at each time in ts.
func stepPath(ts []float64, end float64, x, y func(float64) float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "M%.1f %.1f ", x(0), y(0))
	for i, t := range ts {
		fmt.Fprintf(&b, "H%.2f V%.1f ", x(t), y(float64(i+1)))
	}
	fmt.Fprintf(&b, "H%.1f", x(end))
	return b.String()
}

func timeAxis(b *strings.Builder, end float64, x func(float64) float64, y float64) {
	step := 1.0
	for _, m := range []float64{1, 2, 5, 10, 20, 50, 100} {
		step = m
		if end/m <= 12 {
			break
		}
	}
	for s := 0.0; s <= end+1e-9; s += step {
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%.0f</text>`+"\n", x(s), y+14, s)
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">seconds</text>`+"\n", x(end), y+28)
}

func usLabel(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.0f s", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%.0f ms", us/1e3)
	case us >= 1:
		return fmt.Sprintf("%.0f µs", us)
	}
	return fmt.Sprintf("%.0f ns", us*1e3)
}
