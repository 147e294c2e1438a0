"""Channel health reports: figures over stored samples, a forecast, the chart, the schedule."""
