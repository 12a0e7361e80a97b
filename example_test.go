package mai_test

import (
	"errors"
	"fmt"
	"net"

	"github.com/mai-go/mai"
)

// Options are checked as a whole: an invalid configuration is an error
// matching ErrInvalidOption, never silently corrected.
func ExampleBuild() {
	_, err := mai.Build(mai.WithWriteBufferWaterMarks(64<<10, 32<<10))
	fmt.Println(errors.Is(err, mai.ErrInvalidOption))
	o, _ := mai.Build(mai.WithMaxFrameSize(1 << 20))
	fmt.Println(o.MaxInboundBytes, o.WriteBufferHighWater)
	// Output:
	// true
	// 1114112 1048576
}

// Timeout errors implement net.Error.
func ExampleTimeout_Err() {
	err := mai.Timeout{Kind: mai.TimeoutIdle}.Err()
	var ne net.Error
	fmt.Println(err, errors.As(err, &ne) && ne.Timeout(), errors.Is(err, mai.ErrIdleTimeout))
	fmt.Println(mai.Timeout{Kind: mai.TimeoutTimer, Payload: "retry"}.Err())
	// Output:
	// mai: idle timeout true true
	// <nil>
}

func ExampleConnID() {
	id := mai.NewConnID(7, 3)
	fmt.Println(id, id.Slot(), id.Generation())
	// Output: conn-7.3 7 3
}
