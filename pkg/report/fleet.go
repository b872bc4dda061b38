package report

// Fleet is one client's place in a fleet of bp-clients run together (see
// docs/FLEET.md). It is an object of its own in the JSON report, not
// top-level fields, because a merged fleet report's top-level "instances"
// is the list of the instances' reports.
type Fleet struct {
	// Name is the fleet run's name (--fleet), "" when not named.
	Name string `json:"name"`
	// Instance is this client's index, 0..Instances-1; Instances how many
	// clients the fleet has.
	Instance  int `json:"instance"`
	Instances int `json:"instances"`
	// Connections is the fleet's total (--connections); the report's own
	// connections are this instance's share of it.
	Connections int `json:"connections"`
}

// writeFleetText prints the fleet row of an instance's text report.
func (s Summary) writeFleetText(row func(k, format string, a ...any)) {
	f := s.Fleet
	if f == nil {
		return
	}
	name := f.Name
	if name == "" {
		name = "(unnamed)"
	}
	row("fleet", "%s: instance %d of 0..%d, %d of the fleet's %d connections", name, f.Instance, f.Instances-1, s.Connections, f.Connections)
}
