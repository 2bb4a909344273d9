package transport

import "github.com/rs/zerolog"

// gnetLogger routes gnet's internal log lines to a zerolog.Logger.
//
// gnet keeps one process-wide default logger that the most recently started
// engine replaces, so with several gnet listeners the lines of all of them
// may end up in the logger of the last one; that is harmless because every
// listener logs to the same process logger built by cmd.
type gnetLogger struct{ l zerolog.Logger }

func (g gnetLogger) Debugf(format string, args ...any) { g.l.Debug().Msgf(format, args...) }
func (g gnetLogger) Infof(format string, args ...any)  { g.l.Debug().Msgf(format, args...) }
func (g gnetLogger) Warnf(format string, args ...any)  { g.l.Warn().Msgf(format, args...) }
func (g gnetLogger) Errorf(format string, args ...any) { g.l.Error().Msgf(format, args...) }

// Fatalf logs at error level: a library must not exit the process; gnet
// only uses it for conditions it then returns as errors anyway.
func (g gnetLogger) Fatalf(format string, args ...any) { g.l.Error().Msgf(format, args...) }
