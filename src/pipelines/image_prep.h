// Preparing init images and masks for image-to-image and inpainting:
// resizing (A1111's three resize modes, Lanczos like PIL), [-1,1] tensors,
// masks from luminance or alpha, blur, the "only masked" crop and paste-back.
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"
#include "visiongen/visiongen.h"

namespace vg {

// A request's init image and mask: ImageInputs, else the files the params
// name (pi/pm null when absent). Checks a mask has an init image and that
// pixel buffers match their sizes.
struct RequestImages {
  RequestImages(const GenerateParams& p, const ImageInputs& in);
  RequestImages(const RequestImages&) = delete;  // pi/pm may point into this object
  RequestImages& operator=(const RequestImages&) = delete;
  Image init, mask;
  const Image* pi = nullptr;
  const Image* pm = nullptr;
};

// invalid_argument unless w and h are multiples of `mult`, suggesting the
// next size that is ("for <who>": "this model", "flux", ...).
Status check_size_multiple(int w, int h, int mult, const std::string& who);

// Lanczos-3 resampling (PIL's filter, antialiased when shrinking); any channel count.
Image resize_image(const Image& img, int w, int h);
// mode: just_resize | crop_and_resize | resize_and_fill (A1111 semantics).
Image fit_image(const Image& img, int w, int h, const std::string& mode);
Image crop_image(const Image& img, int x0, int y0, int x1, int y1);

// NHWC [1,h,w,3] in [-1,1] (pixel/255*2-1); alpha is dropped like PIL's convert("RGB").
Tensor image_to_tensor(const Image& img);

// One value per pixel in [0,1]; 1 = repaint. From the alpha channel
// (transparent = repaint, the OpenAI edits convention) when `from_alpha`,
// else from PIL "L" luminance (white = repaint).
std::vector<float> mask_from_image(const Image& mask, bool from_alpha);
bool has_transparency(const Image& img);
// Gaussian blur with standard deviation `sigma` pixels (0 = none).
std::vector<float> blur_mask(const std::vector<float>& m, int w, int h, float sigma);

struct Box {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // half-open
  int width() const { return x1 - x0; }
  int height() const { return y1 - y0; }
};
// Bounding box of mask > 0.5, grown by `padding` and widened to the aspect
// ratio target_w:target_h within the image (A1111's "only masked").
Box mask_crop_box(const std::vector<float>& m, int w, int h, int padding, int target_w, int target_h);

// out = original * (1 - a) + generated * a per pixel (RGB8, same size).
Image composite(const Image& original, const Image& generated, const std::vector<float>& alpha);

}  // namespace vg
