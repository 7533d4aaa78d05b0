package redisurl_test

import (
	"fmt"

	"github.com/streamsession/streamsession/service/redisurl"
)

func ExampleParse() {
	cfg, err := redisurl.Parse("redis+sentinel://app:hunter2@10.0.0.1:26379,10.0.0.2:26379/mymaster/0", redisurl.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Kind(), cfg.Addrs())
	fmt.Println(cfg) // safe to log: the password is hidden
	client := cfg.NewClient()
	defer client.Close()

	_, err = redisurl.Parse("redis://app:hunter2@10.0.0.1:6379/zero", redisurl.Options{})
	fmt.Println(err)
	// Output:
	// sentinel [10.0.0.1:26379 10.0.0.2:26379]
	// redis+sentinel://app:xxxxx@10.0.0.1:26379,10.0.0.2:26379/mymaster/0
	// redisurl: redis://app:xxxxx@10.0.0.1:6379/zero: redis: invalid database number: "zero"
}
