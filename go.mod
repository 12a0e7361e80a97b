module github.com/mai-go/mai

go 1.24

require github.com/valyala/bytebufferpool v1.0.0 // indirect
